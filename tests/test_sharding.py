"""Shard cutting: by bytes while reading (one process) equals the up-front plan (workers)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packer import convert, open_pack
from packer.demo import make_demo_tree
from packer.errors import UsageError
from packer.executors import available_cpus, default_workers
from packer.plan import DEFAULT_SHARD_SIZE, default_samples_per_shard, plan_shards
from packer.sizes import parse_bytes
from packer.testing import tree_digest


@pytest.mark.parametrize(
    ("shard_size", "per_shard"), [("20KB", None), ("9KB", 7), (None, 11), ("1B", None)]
)
def test_one_process_and_workers_cut_the_same_shards(
    tmp_path: Path, shard_size: str | None, per_shard: int | None
) -> None:
    tree = make_demo_tree(tmp_path / "src", per_class=15, size=24)
    (tree / "square" / "broken.jpg").write_bytes(
        b"\xff\xd8\xff" + b"x" * 5000
    )  # skipped, still counted
    kwargs = {"shard_size": shard_size, "samples_per_shard": per_shard, "on_error": "skip"}
    one = convert(tree, tmp_path / "one.pack", "tar", **kwargs)  # type: ignore[arg-type]
    two = convert(tree, tmp_path / "two.pack", "tar", workers=2, **kwargs)  # type: ignore[arg-type]
    assert tree_digest(one.path) == tree_digest(two.path)
    assert one.data_files > 1 and len(one.skipped) == 1
    with open_pack(one.path) as pack:
        limit = parse_bytes(shard_size) if shard_size else None
        loc = pack.index.locations
        for file_id, f in enumerate(pack.manifest.data_files):
            assert per_shard is None or f.num_samples <= per_shard
            payload = int(loc[loc[:, 0] == file_id, 2].sum())
            assert limit is None or f.num_samples == 1 or payload <= limit


@pytest.mark.parametrize(
    ("n", "shards"), [(1, 1), (4096, 1), (4097, 2), (65_536, 16), (65_537, 16), (10**6, 16)]
)
def test_default_cut_gives_mid_size_trees_shards_to_share(n: int, shards: int) -> None:
    per_shard = default_samples_per_shard(n)
    assert per_shard >= 4096
    # tiny files: the 1 GiB default never cuts, the sample cap does, the same for any workers
    assert len(plan_shards(np.full(n, 100), n, DEFAULT_SHARD_SIZE, per_shard)) == shards


def test_a_default_convert_is_cut_by_the_sample_cap(tmp_path: Path) -> None:
    tree = make_demo_tree(tmp_path / "src", per_class=1100, size=8)  # 4400 samples
    report = convert(tree, tmp_path / "out.pack", "memmap", workers=1)
    assert report.data_files == 2
    with open_pack(report.path) as pack:
        assert pack.manifest.created_by["samples_per_shard"] == 4096
        assert [f.num_samples for f in pack.manifest.data_files] == [4096, 304]


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 100), min_size=1, max_size=40),
    limit=st.one_of(st.none(), st.integers(1, 300)),
    count=st.one_of(st.none(), st.integers(1, 10)),
)
def test_plan_rule(sizes: list[int], limit: int | None, count: int | None) -> None:
    arr = np.asarray(sizes)
    bounds = plan_shards(arr if limit is not None else None, len(sizes), limit, count)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(sizes)
    assert all(a < b for a, b in bounds) and all(
        b == c for (_, b), (c, _) in itertools.pairwise(bounds)
    )
    for a, b in bounds:
        assert count is None or b - a <= count
        assert limit is None or b - a == 1 or arr[a:b].sum() <= limit
    for a, b in bounds[:-1]:  # greedy: a shard ends only when the next sample does not fit
        over_count = count is not None and b + 1 - a > count
        over_bytes = limit is not None and arr[a : b + 1].sum() > limit
        assert over_count or over_bytes, (a, b)
    if limit is None and count is None:
        assert bounds == [(0, len(sizes))]


@pytest.mark.parametrize("bad", ["", "12XB", "-5", "0", "lots"])
def test_bad_sizes(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_bytes(bad)


def test_sizes() -> None:
    assert (
        parse_bytes("512MB") == 512_000_000
        and parse_bytes("1GiB") == 2**30
        and parse_bytes("4096") == 4096
    )


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_any_executor_gives_the_same_pack(tmp_path: Path, kind: str) -> None:
    """The executor seam: shards written on any concurrent.futures.Executor, same bytes."""
    import concurrent.futures as cf
    import multiprocessing

    tree = make_demo_tree(tmp_path / "src", per_class=12, size=24)
    one = convert(tree, tmp_path / "one.pack", "zip", samples_per_shard=5)
    pool: cf.Executor = (
        cf.ThreadPoolExecutor(3)
        if kind == "thread"
        else cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    )
    with pool:
        other = convert(tree, tmp_path / "other.pack", "zip", samples_per_shard=5, executor=pool)
    assert other.data_files == one.data_files > 1
    assert tree_digest(other.path) == tree_digest(one.path)


def test_a_failing_shard_cancels_the_queued_ones(tmp_path: Path) -> None:
    import concurrent.futures as cf

    from packer.errors import SourceError

    tree = make_demo_tree(tmp_path / "src", per_class=20, size=24)
    (tree / "circle" / "0000.png").write_bytes(b"not an image")  # the first shard fails
    submitted: list[cf.Future[object]] = []

    class Recording(cf.ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            future = super().submit(fn, *args, **kwargs)
            submitted.append(future)
            return future

    with Recording(1) as pool, pytest.raises(SourceError, match="0000.png"):
        convert(tree, tmp_path / "p.pack", "tar", samples_per_shard=4, executor=pool)
    assert len(submitted) > 2 and any(f.cancelled() for f in submitted)
    assert not (tmp_path / "p.pack").exists()


def test_default_workers_follow_the_cpus_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 256)  # the node, not what this job may use
    assert available_cpus() == 6
    assert default_workers(decodes=True) == 6 and default_workers(decodes=False) == 3
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")  # a SLURM allocation wins
    assert default_workers(decodes=True) == 2 and default_workers(decodes=False) == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert default_workers(decodes=False) == 1  # never 0
