"""Packs in object storage, against a real S3-compatible server (moto's ThreadedMotoServer on
127.0.0.1, port 0) through s3fs: no mocking of fsspec or boto. Requests are counted from the
server's own request log (moto's recorder)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

import requests

from factories import TreeFactory
from packer import convert, open_pack
from packer._util.files import STATE_DIR
from packer.api import stage
from packer.cli.main import app
from packer.errors import EXIT_OUTPUT, EXIT_PROBLEMS_FOUND, PackError
from packer.testing import tree_digest

RECORDING = Path(os.environ.setdefault("MOTO_RECORDER_FILEPATH", "/tmp/packer-moto-recording"))


@dataclass
class S3:
    endpoint: str
    options: dict[str, Any]
    fs: Any

    def requests(self) -> list[dict[str, Any]]:
        """Requests the server saw since the last :meth:`reset` (S3 API calls only)."""
        text = requests.get(f"{self.endpoint}/moto-api/recorder/download-recording").text
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def reset(self) -> None:
        requests.post(f"{self.endpoint}/moto-api/recorder/reset-recording").raise_for_status()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    requests.put(f"{endpoint}/bucket").raise_for_status()
    requests.post(f"{endpoint}/moto-api/recorder/start-recording").raise_for_status()
    try:
        yield S3(endpoint, options, s3fs.S3FileSystem(skip_instance_cache=True, **options))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tree(demo_trees: TreeFactory) -> Path:
    return demo_trees(per_class=40, size=24)


def _upload(s3: S3, local: Path, name: str) -> str:
    s3.fs.put(str(local), f"bucket/{name}", recursive=True)
    s3.fs.invalidate_cache()
    return f"s3://bucket/{name}"


def _gets(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in log if r["method"] == "GET"]


@pytest.mark.parametrize("fmt", ["tar", "memmap", "arrow", "hdf5", "zip"])
def test_every_sample_of_a_remote_pack_is_the_local_one(
    s3: S3, tree: Path, tmp_path: Path, fmt: str
) -> None:
    options = {"compression": "stored"} if fmt == "zip" else None
    local = convert(tree, tmp_path / "p.pack", fmt, samples_per_shard=48, options=options).path
    url = _upload(s3, local, f"every-{fmt}.pack")
    with (
        open_pack(local) as here,
        open_pack(url, storage_options=s3.options, cache_dir=tmp_path / "cache") as there,
    ):
        assert len(there) == len(here) and there.classes == here.classes
        assert list(there) == list(here)  # sequential, coalesced
        for i in np.random.default_rng(0).permutation(len(here))[:40].tolist():
            assert there[i] == here[i]  # random, a GET each
        assert np.array_equal(there.labels, here.labels)


def test_requests_random_batched_sequential_and_warm_open(
    s3: S3, tree: Path, tmp_path: Path
) -> None:
    local = convert(tree, tmp_path / "p.pack", "tar", samples_per_shard=80, cut="fixed").path
    url = _upload(s3, local, "count.pack")
    cache = tmp_path / "cache"
    s3.reset()
    cold = open_pack(url, storage_options=s3.options, cache_dir=cache)
    first = s3.requests()
    assert first[0]["url"].endswith("/manifest.json") and len(first) == len(_gets(first))
    assert len(first) == 1 + sum(1 for n in cold.manifest.index_sha256 if n.startswith("index/"))
    cold.close()

    s3.reset()
    pack = open_pack(url, storage_options=s3.options, cache_dir=cache)
    warm = s3.requests()
    assert len(warm) == 1 and warm[0]["url"].endswith("/manifest.json")  # no index bytes again

    s3.reset()
    picks = [3, 150, 77, 12]
    with open_pack(local) as here:
        assert [pack.read(i) for i in picks] == [here.read(i) for i in picks]
        assert len(_gets(s3.requests())) == len(picks)  # one GET per random sample

        s3.reset()
        in_shard = np.random.default_rng(1).choice(80, 64, replace=False) + 80  # shard 1
        assert pack.read_many(in_shard) == [here.read(int(i)) for i in in_shard]
        assert 1 <= len(_gets(s3.requests())) <= 8

        s3.reset()
        assert [s.data for s in pack] == [s.data for s in here]
        assert len(_gets(s3.requests())) == len(here.manifest.data_files)  # one per shard
    pack.close()


def test_a_pack_that_cannot_be_read_by_range_points_to_stage(
    s3: S3, tree: Path, tmp_path: Path
) -> None:
    local = convert(tree, tmp_path / "p.pack", "lmdb").path
    url = _upload(s3, local, "lmdb.pack")
    with pytest.raises(PackError, match=r"cannot be read by byte range.*pack stage"):
        open_pack(url, storage_options=s3.options, cache_dir=tmp_path / "cache")


def test_an_object_changed_under_a_reader_is_an_error(s3: S3, tree: Path, tmp_path: Path) -> None:
    local = convert(tree, tmp_path / "p.pack", "tar", samples_per_shard=48).path
    url = _upload(s3, local, "changing.pack")
    pack = open_pack(url, storage_options=s3.options, cache_dir=tmp_path / "cache")
    first = pack.manifest.data_files[0].name
    blob = bytearray((local / first).read_bytes())
    blob[1024:1536] = bytes(512)  # the first payload's bytes, same size
    s3.fs.pipe(f"bucket/changing.pack/{first}", bytes(blob))
    with pytest.raises(PackError, match="CRC-32 differs"):
        pack.read(0)
    pack.close()


def test_missing_pack_and_unreachable_endpoint(tmp_path: Path, s3: S3) -> None:
    with pytest.raises(PackError, match=r"s3://bucket/nowhere.pack/manifest.json: not found"):
        open_pack("s3://bucket/nowhere.pack", storage_options=s3.options, cache_dir=tmp_path)
    closed = {
        **s3.options,
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"},
        "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
    }
    with pytest.raises(PackError, match=r"x.pack/manifest.json: failed after 2 attempt\(s\)"):
        open_pack("s3://bucket/x.pack", storage_options=closed, cache_dir=tmp_path, retries=1)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_a_dataloader_with_two_workers_over_a_remote_pack(
    s3: S3, tree: Path, tmp_path: Path, context: str
) -> None:
    torch = pytest.importorskip("torch")
    from packer.pytorch import PackDataset

    local = convert(tree, tmp_path / "p.pack", "tar", samples_per_shard=48).path
    url = _upload(s3, local, f"loader-{context}.pack")
    dataset = PackDataset(
        url, decode="bytes", storage_options=s3.options, cache_dir=str(tmp_path / "cache")
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=16, num_workers=2, multiprocessing_context=context, collate_fn=_as_list
    )
    got = [item for batch in loader for item in batch]
    with open_pack(local) as here:
        assert got == [(here.read(i), here.label(i)) for i in range(len(here))]


def _as_list(batch: list[Any]) -> list[Any]:
    return batch


def _pack_files(root: Path) -> dict[str, str]:
    return {k: v for k, v in tree_digest(root).items() if not k.startswith(STATE_DIR)}


def test_stage_copies_verifies_and_is_a_no_op_the_second_time(
    s3: S3, tree: Path, tmp_path: Path
) -> None:
    local = convert(tree, tmp_path / "p.pack", "lmdb", samples_per_shard=48).path
    url = _upload(s3, local, "stage.pack")
    copy = tmp_path / "node" / "train.pack"
    s3.reset()
    report = stage(url, copy, storage_options=s3.options)
    assert not report.already and report.bytes_copied == report.bytes_total
    assert _pack_files(copy) == _pack_files(local)
    assert not any(p.name.endswith(".part") for p in copy.rglob("*"))
    s3.reset()
    again = stage(url, copy, storage_options=s3.options)
    assert again.already and again.bytes_copied == 0 and again.bytes_total == report.bytes_total
    assert all(
        r["url"].endswith("/manifest.json") for r in s3.requests()
    )  # same pack? nothing else
    with open_pack(copy) as staged, open_pack(local) as here:
        assert list(staged) == list(here)


def test_stage_from_a_folder_and_refusals(tree: Path, tmp_path: Path) -> None:
    local = convert(tree, tmp_path / "p.pack", "zip").path
    copy = tmp_path / "ssd" / "p.pack"
    stage(local, copy)
    assert _pack_files(copy) == _pack_files(local)
    other = convert(tree, tmp_path / "q.pack", "tar").path
    from packer.errors import OutputError

    with pytest.raises(OutputError, match="already exists"):
        stage(other, copy)
    stage(other, copy, force=True)
    assert _pack_files(copy) == _pack_files(other)


# Killed mid-copy at the N-th chunk request (a small chunk so a data file takes many), in a
# real process; the stage run again continues each file and transfers only what was missing.
KILL_STAGE = """
import os, signal, sys, json
import packer.storage.stage as st
st.CHUNK = 4096
calls = 0
original = st.Store.cat
def cat(self, name, start=0, end=None):
    global calls
    if name.startswith("shard-"):
        calls += 1
        if calls == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
    return original(self, name, start, end)
st.Store.cat = cat
st.stage(sys.argv[1], sys.argv[2], storage_options=json.loads(sys.argv[4]), workers=1)
"""


def test_a_killed_stage_resumes_where_it_stopped(s3: S3, tree: Path, tmp_path: Path) -> None:
    local = convert(tree, tmp_path / "p.pack", "tar", samples_per_shard=48).path
    url = _upload(s3, local, "resume.pack")
    copy = tmp_path / "node" / "train.pack"
    options = json.dumps(s3.options)
    proc = subprocess.run(
        [sys.executable, "-c", KILL_STAGE, url, str(copy), "12", options], timeout=120
    )
    assert proc.returncode == -signal.SIGKILL and not copy.exists()
    partial = copy.parent / f".{copy.name}.packer-partial"
    present = {p.name: p.stat().st_size for p in partial.rglob("shard-*")}
    begun = sum(present.values())
    assert begun > 4096  # what the killed run had fetched is still there
    s3.reset()
    report = stage(url, copy, storage_options=s3.options)
    assert report.bytes_copied == report.bytes_total - begun  # only what was missing
    assert _pack_files(copy) == _pack_files(local)
    for request in _gets(s3.requests()):
        name = request["url"].rsplit("/", 1)[1]
        assert name not in present  # finished before the kill: checked, not fetched again
        if f"{name}.part" in present:  # begun: continued from where it stopped
            start = int(request["headers"]["Range"].removeprefix("bytes=").split("-")[0])
            assert start >= present[f"{name}.part"]


def test_stage_checks_free_space_first(
    s3: S3, tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    from collections import namedtuple

    from packer.errors import OutputError

    local = convert(tree, tmp_path / "p.pack", "tar").path
    url = _upload(s3, local, "space.pack")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 100, 100))
    s3.reset()
    with pytest.raises(OutputError, match="needs .* GB free"):
        stage(url, tmp_path / "node" / "p.pack", storage_options=s3.options)
    assert not [r for r in _gets(s3.requests()) if "shard-" in r["url"]]  # not a byte of data


def test_two_stagers_on_one_node_copy_once(s3: S3, tree: Path, tmp_path: Path) -> None:
    local = convert(tree, tmp_path / "p.pack", "tar", samples_per_shard=48).path
    url = _upload(s3, local, "lock.pack")
    copy = tmp_path / "node" / "train.pack"
    code = (
        "import sys, json; from packer.api import stage; "
        "r = stage(sys.argv[1], sys.argv[2], storage_options=json.loads(sys.argv[3])); "
        "print(json.dumps(r.to_dict()))"
    )
    args = [sys.executable, "-c", code, url, str(copy), json.dumps(s3.options)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE) for _ in range(2)]
    reports = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert sorted(r["already_staged"] for r in reports) == [False, True]
    assert _pack_files(copy) == _pack_files(local)


def test_cli_inspect_stage_and_verify_on_urls(
    s3: S3, tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = convert(tree, tmp_path / "p.pack", "tar").path
    url = _upload(s3, local, "cli.pack")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("PACKER_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    shown = runner.invoke(app, ["inspect", url, "--json"])
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.output)
    here = json.loads(runner.invoke(app, ["inspect", str(local), "--json"]).output)
    assert info["num_samples"] == here["num_samples"] and info["pack_bytes"] == here["pack_bytes"]
    staged = runner.invoke(app, ["stage", url, str(tmp_path / "node.pack"), "--json"])
    assert staged.exit_code == 0, staged.output
    assert (
        json.loads(staged.output)["files"]
        == len(here["data_files"]) + len(open_pack(local).manifest.index_sha256) + 1
    )
    made = runner.invoke(app, ["convert", str(tree), "s3://bucket/cli-made.pack", "-q"])
    assert made.exit_code == 0, made.output
    again = runner.invoke(app, ["convert", str(tree), "s3://bucket/cli-made.pack", "-q"])
    assert again.exit_code == EXIT_OUTPUT and "--force" in again.output
    verified = runner.invoke(app, ["verify", url, "--deep"])
    assert verified.exit_code == 0 and f"verified in {url}" in verified.output
    status = runner.invoke(app, ["status", str(tree), url])
    assert status.exit_code == 2 and "pack stage" in status.output
    extracted = runner.invoke(app, ["extract", url, str(tmp_path / "out"), "-q"])
    assert extracted.exit_code == 0, extracted.output
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.jpg")) == sorted(
        p.name for p in tree.rglob("*.jpg")
    )


def test_convert_to_a_bucket_appears_whole_and_force_replaces(
    s3: S3, tree: Path, tmp_path: Path
) -> None:
    from packer.errors import OutputError

    url = "s3://bucket/made.pack"
    report = convert(tree, url, "tar", samples_per_shard=30, storage_options=s3.options)
    assert report.url == url and report.to_dict()["path"] == url
    here = convert(tree, tmp_path / "here.pack", "tar", samples_per_shard=30).path
    s3.fs.invalidate_cache()
    listed = {p.removeprefix("bucket/made.pack/") for p in s3.fs.find("bucket/made.pack")}
    assert listed == set(tree_digest(here))  # every file, the update state too
    with open_pack(url, storage_options=s3.options, cache_dir=tmp_path / "c") as there:
        assert list(there) == list(open_pack(here))
    s3.reset()
    with pytest.raises(OutputError, match="already exists"):
        convert(tree, url, "tar", storage_options=s3.options)
    assert not [r for r in s3.requests() if r["method"] in ("PUT", "POST", "DELETE")]
    # replaced by a pack with fewer shards: the old shards beyond are removed
    convert(tree, url, "tar", samples_per_shard=100, force=True, storage_options=s3.options)
    s3.fs.invalidate_cache()
    fewer = convert(tree, tmp_path / "fewer.pack", "tar", samples_per_shard=100).path
    listed = {p.removeprefix("bucket/made.pack/") for p in s3.fs.find("bucket/made.pack")}
    assert listed == set(tree_digest(fewer))
    with open_pack(url, storage_options=s3.options, cache_dir=tmp_path / "c") as there:
        assert list(there) == list(open_pack(fewer))


def test_a_prefix_without_a_manifest_is_refused(s3: S3, tree: Path, tmp_path: Path) -> None:
    local = convert(tree, tmp_path / "p.pack", "tar").path
    url = _upload(s3, local, "half.pack")
    s3.fs.rm_file("bucket/half.pack/manifest.json")  # as an upload cut off before its end
    with pytest.raises(PackError, match="complete only once its manifest.json is there"):
        open_pack(url, storage_options=s3.options, cache_dir=tmp_path / "c")


def test_merge_to_a_bucket(s3: S3, tree: Path, tmp_path: Path) -> None:
    from packer.api import convert_part, merge, save_plan

    save_plan(tree, tmp_path / "plan", "arrow", samples_per_shard=40)
    parts = [tmp_path / f"part-{i}" for i in range(2)]
    for i, part in enumerate(parts):
        convert_part(tmp_path / "plan", f"{i}/2", part)
    url = "s3://bucket/merged.pack"
    merge(tmp_path / "plan", parts, url, storage_options=s3.options)
    one = convert(tree, tmp_path / "one.pack", "arrow", samples_per_shard=40).path
    with open_pack(url, storage_options=s3.options, cache_dir=tmp_path / "c") as there:
        assert list(there) == list(open_pack(one))


def test_verify_a_damaged_remote_pack_names_every_problem(
    s3: S3, tree: Path, tmp_path: Path
) -> None:
    from packer.check.verify import verify_pack

    local = convert(tree, tmp_path / "p.pack", "tar", samples_per_shard=48).path
    url = _upload(s3, local, "damaged.pack")
    assert verify_pack(url, storage_options=s3.options).ok
    names = [d.name for d in open_pack(local).manifest.data_files]
    blob = bytearray((local / names[0]).read_bytes())
    blob[1024:1030] = b"XXXXXX"  # damaged in place
    s3.fs.pipe(f"bucket/damaged.pack/{names[0]}", bytes(blob))
    s3.fs.rm_file(f"bucket/damaged.pack/{names[1]}")  # lost
    s3.fs.pipe(f"bucket/damaged.pack/{names[2]}", (local / names[2]).read_bytes()[:-512])  # cut
    s3.fs.invalidate_cache()
    report = verify_pack(url, storage_options=s3.options)
    assert not report.ok and report.to_dict()["path"] == url
    wheres = {p.where for p in report.problems}
    for name in names[:3]:
        assert f"{url}/{name}" in wheres
    runner = CliRunner()
    result = runner.invoke(
        app, ["verify", url, "--json"], env={
            "AWS_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        },
    )  # fmt: skip
    assert result.exit_code == EXIT_PROBLEMS_FOUND and not json.loads(result.output)["ok"]


def test_bench_measures_a_pack_at_a_url(
    s3: S3, tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from packer.api import bench

    local = convert(tree, tmp_path / "p.pack", "tar").path
    url = _upload(s3, local, "bench.pack")
    for name, value in {
        "AWS_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "PACKER_CACHE": str(tmp_path / "cache"),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)  # the open probe runs in a fresh process
    report = bench(tree, formats=["tar"], packs=[url], repeat=1, random_reads=100)
    measured = {s.name: s for s in report.results}
    remote = measured["tar:bench.pack"]
    assert (remote.median("seq_samples_per_s") or 0) > 0 and (
        remote.median("random_samples_per_s") or 0
    ) > 0
    assert remote.median("size_ratio") == pytest.approx(
        measured["tar"].median("size_ratio"), rel=0.05
    )


def test_access_denied_is_one_line_naming_the_url(
    s3: S3, tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto import settings

    local = convert(tree, tmp_path / "p.pack", "tar").path
    url = _upload(s3, local, "denied.pack")
    # the server runs in this process: make it check credentials (ours are unknown to it: 403)
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    with pytest.raises(PackError, match=r"denied.pack/manifest.json: access denied; check"):
        open_pack(
            url, storage_options={**s3.options, "skip_instance_cache": True}, cache_dir=tmp_path
        )


def _bucket_digest(s3: S3, prefix: str) -> dict[str, str]:
    import hashlib

    s3.fs.invalidate_cache()
    return {
        p.removeprefix(f"bucket/{prefix}/"): hashlib.sha256(s3.fs.cat_file(p)).hexdigest()
        for p in s3.fs.find(f"bucket/{prefix}")
    }


def test_update_a_pack_in_a_bucket_sends_only_what_changed(
    s3: S3, tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import fsspec.config

    # one request at a time: moto's request log is written by its threads without a lock
    monkeypatch.setitem(fsspec.config.conf, "gather_batch_size", 1)
    monkeypatch.setitem(fsspec.config.conf, "nofiles_gather_batch_size", 1)

    src = tmp_path / "src"
    shutil.copytree(tree, src)
    url = "s3://bucket/updated.pack"
    kw: dict[str, Any] = {"samples_per_shard": 24, "storage_options": s3.options}
    first = convert(src, url, "tar", update=True, **kw)  # no pack there yet: all of it
    assert first.update is not None and "no pack" in first.update["rebuild"]
    s3.reset()
    same = convert(src, url, "tar", update=True, **kw)
    assert same.update is not None and same.update["up_to_date"]
    assert {r["method"] for r in s3.requests()} <= {"GET", "HEAD"}  # nothing written
    (src / "circle" / "circle_0002a.jpg").write_bytes(
        (tree / "circle" / "circle_0002.jpg").read_bytes()
    )
    s3.reset()
    report = convert(src, url, "tar", update=True, **kw)
    assert report.update is not None and report.update["files"]["added"] == 1
    written = report.update["shards"]["to_rewrite"]
    assert 1 <= written <= 2 < report.update["shards"]["total"]
    puts = [
        r["url"]
        for r in s3.requests()
        if r["method"] == "PUT" and "x-amz-copy-source" not in {k.lower() for k in r["headers"]}
    ]
    assert len([u for u in puts if "/shard-" in u and u.endswith(".tar")]) == written
    fresh = convert(src, tmp_path / "fresh.pack", "tar", samples_per_shard=24).path
    assert _bucket_digest(s3, "updated.pack") == tree_digest(fresh)
    # many files at the front: new shards there, every later shard moves to another number
    # (copied inside the bucket, not sent again)
    for i in range(40):
        jpeg = (tree / "circle" / "circle_0001.jpg").read_bytes()
        (src / "circle" / f"circle_0001-{i}.jpg").write_bytes(jpeg + bytes(i))  # padded, valid
    s3.reset()
    moved = convert(src, url, "tar", update=True, **kw)
    assert moved.update is not None and moved.update["rebuild"] is None
    log = s3.requests()
    copies = [r for r in log if "x-amz-copy-source" in {k.lower() for k in r["headers"]}]
    sent = [
        r for r in log if r["method"] == "PUT" and r not in copies and r["url"].endswith(".tar")
    ]
    assert copies and len(sent) == moved.update["shards"]["to_rewrite"]
    fresh = convert(src, tmp_path / "fresh2.pack", "tar", samples_per_shard=24).path
    assert _bucket_digest(s3, "updated.pack") == tree_digest(fresh)


def test_a_hostile_manifest_never_writes_outside(s3: S3, tree: Path, tmp_path: Path) -> None:
    local = convert(tree, tmp_path / "p.pack", "tar").path
    url = _upload(s3, local, "hostile.pack")
    document = json.loads((local / "manifest.json").read_text())
    document["index"]["sha256"]["index/../../escaped"] = "0" * 64
    s3.fs.pipe("bucket/hostile.pack/manifest.json", json.dumps(document).encode())
    s3.fs.pipe("bucket/hostile.pack/escaped", b"payload")
    s3.fs.invalidate_cache()
    base = tmp_path / "deep" / "er"
    with pytest.raises(PackError, match="escape"):
        open_pack(url, storage_options=s3.options, cache_dir=base / "cache")
    with pytest.raises(PackError, match="escape"):
        stage(url, base / "node" / "p.pack", storage_options=s3.options)
    assert not [p for p in tmp_path.rglob("escaped")]


def test_a_pack_of_what_users_have_reads_stages_and_verifies_from_a_bucket(
    s3: S3, tmp_path: Path
) -> None:
    """Padded phone JPEGs, odd BMPs, 16-bit and CMYK images, a non-UTF-8 name (its key goes
    through the index and the object names unchanged)."""
    from packer.check.verify import verify_pack
    from test_real_trees import real_tree

    src = real_tree(tmp_path / "src")
    local = convert(src, tmp_path / "p.pack", "tar", samples_per_shard=8).path
    url = _upload(s3, local, "users.pack")
    with (
        open_pack(local) as here,
        open_pack(url, storage_options=s3.options, cache_dir=tmp_path / "c") as there,
    ):
        assert list(there) == list(here)
        assert any("\udce9" in s.key for s in there)
    copy = tmp_path / "node" / "users.pack"
    stage(url, copy, storage_options=s3.options)
    assert _pack_files(copy) == _pack_files(local)
    assert verify_pack(url, storage_options=s3.options, deep=True).ok
