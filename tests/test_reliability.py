"""Crash safety, resume, full disk, Ctrl-C, and reading while a pack is replaced."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factories import TreeFactory
from packer import convert, open_pack
from packer.conversion.resume import RESUME_DIR
from packer.demo import make_demo_tree
from packer.errors import PackError
from packer.format.staging import partial_path
from packer.testing import tree_digest

# A module that slows every shard down, importable by spawned worker processes too (pickle finds
# the patched write_shard as slowshards.slow), so that tests can interrupt a convert mid-way.
SLOW_MODULE = """
import time
import packer.conversion.runner as c
original = c.write_shard
def slow(job, *args, **kwargs):
    time.sleep(0.15)
    return original(job, *args, **kwargs)
c.write_shard = slow
"""
SLOW_CONVERT = "import sys, slowshards; from packer.cli.main import main; sys.argv = ['pack', 'convert', *sys.argv[1:]]; main()"


@pytest.fixture(scope="module")
def tree(demo_trees: TreeFactory) -> Path:
    return demo_trees(per_class=30, size=16)


def _start(tree: Path, dst: Path, *extra: str) -> subprocess.Popen[bytes]:
    helper = dst.parent / "helper"
    helper.mkdir(exist_ok=True)
    (helper / "slowshards.py").write_text(SLOW_MODULE)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(helper), os.environ.get("PYTHONPATH", "")]),
    }
    args = [
        sys.executable,
        "-c",
        SLOW_CONVERT,
        str(tree),
        str(dst),
        "-f",
        "tar",
        "--samples-per-shard",
        "6",
        "-q",
    ]
    return subprocess.Popen(
        [*args, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    # A background job of a non-interactive shell (as CI may run us) starts with SIGINT ignored, and
    # Python keeps an ignored SIGINT ignored: give the child the terminal's default behaviour.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(proc: subprocess.Popen[bytes], dst: Path, after_shard: int, sig: int) -> bytes:
    """Send ``sig`` once shard ``after_shard`` is recorded; return the child's stderr."""
    _wait_for(partial_path(dst) / RESUME_DIR / f"shard-{after_shard:05d}.json")
    proc.send_signal(sig)
    return proc.communicate(timeout=60)[1]


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigkill_leaves_no_pack_and_resume_is_byte_identical(
    tree: Path, tmp_path: Path, workers: str
) -> None:
    reference = convert(tree, tmp_path / "reference.pack", "tar", samples_per_shard=6).path
    dst = tmp_path / "out.pack"
    proc = _start(tree, dst, "--workers", workers)
    # returns only once every process holding the child's stderr is gone: orphaned pool workers
    # (the parent killed, as by the OOM killer) must exit on their own
    _interrupt(proc, dst, 3, signal.SIGKILL)
    assert not dst.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # hidden ones
    assert leftovers == [partial_path(dst).name]  # exactly one, clearly named
    report = convert(tree, dst, "tar", samples_per_shard=6, resume=True)
    assert report.resumed_shards >= 4
    assert tree_digest(dst) == tree_digest(reference)
    assert not partial_path(dst).exists()


def test_next_run_without_resume_cleans_the_leftover(tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.pack"
    proc = _start(tree, dst, "--workers", "1")
    _interrupt(proc, dst, 1, signal.SIGKILL)
    report = convert(tree, dst, "tar", samples_per_shard=6)
    assert report.resumed_shards == 0 and not partial_path(dst).exists()
    assert open_pack(dst).manifest.num_samples == 120


def test_resume_starts_over_when_the_source_changed(tree: Path, tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "src"
    shutil.copytree(tree, src)
    dst = tmp_path / "out.pack"
    proc = _start(src, dst, "--workers", "1")
    _interrupt(proc, dst, 2, signal.SIGKILL)
    (src / "circle" / "circle_0000.jpg").unlink()
    report = convert(src, dst, "tar", samples_per_shard=6, resume=True)
    assert report.resumed_shards == 0
    assert tree_digest(dst) == tree_digest(
        convert(src, tmp_path / "fresh.pack", "tar", samples_per_shard=6).path
    )


def test_ctrl_c_stops_workers_cleans_up_and_exits_130(tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.pack"
    proc = _start(tree, dst, "--workers", "2")
    err = _interrupt(proc, dst, 1, signal.SIGINT)
    assert proc.returncode == 130, err
    assert b"interrupted" in err and b"Traceback" not in err
    assert not dst.exists() and not partial_path(dst).exists()


def test_sigterm_cleans_up_like_ctrl_c(tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.pack"
    proc = _start(tree, dst)
    _interrupt(proc, dst, 1, signal.SIGTERM)
    assert proc.returncode == 130
    assert not dst.exists() and not partial_path(dst).exists()


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of dying
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def test_full_disk_is_a_clear_error_and_keeps_the_previous_pack(tree: Path, tmp_path: Path) -> None:
    dst = convert(tree, tmp_path / "out.pack", "memmap", samples_per_shard=1000).path
    before = tree_digest(dst)
    big = make_demo_tree(tmp_path / "big", per_class=60, size=48)
    proc = subprocess.run(
        [sys.executable, "-m", "packer", "convert", str(big), str(dst), "-f", "memmap", "--force"],
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        timeout=120,
    )
    assert proc.returncode == 4, proc.stderr
    assert "File too large" in proc.stderr and "free some disk space" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert tree_digest(dst) == before
    assert not partial_path(dst).exists()


def test_reader_keeps_old_data_while_the_pack_is_replaced(tree: Path, tmp_path: Path) -> None:
    other = make_demo_tree(tmp_path / "other", per_class=30, size=20, seed=7)
    dst = convert(tree, tmp_path / "p.pack", "memmap", samples_per_shard=25).path
    reading = open_pack(dst)
    expected = [reading.read(i) for i in range(len(reading))]
    reading_lazily = open_pack(dst)  # nothing read yet: data files not opened
    pixels = open_pack(dst)
    pixels.read(0)
    convert(other, dst, "memmap", samples_per_shard=25, force=True)  # replaced underneath
    assert [reading.read(i) for i in range(len(reading))] == expected
    try:
        got = [reading_lazily.read(i) for i in range(len(reading_lazily))]
    except PackError as exc:  # the old files are gone: a clear error is acceptable
        assert "p.pack" in str(exc)
    else:
        assert got == expected  # never the new pack's bytes under the old index
    assert open_pack(dst).read(0) != expected[0]


def test_many_readers_while_another_pack_converts(tree: Path, tmp_path: Path) -> None:
    dst = convert(tree, tmp_path / "p.pack", "tar").path
    script = "import sys, zlib, packer; p = packer.open_pack(sys.argv[1]); print(sum(zlib.crc32(s.data) for s in p))"
    readers = [
        subprocess.Popen([sys.executable, "-c", script, str(dst)], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    convert(tree, tmp_path / "other.pack", "zip", workers=2, samples_per_shard=10)
    expected = sum(__import__("zlib").crc32(s.data) for s in open_pack(dst))
    for r in readers:
        out, _ = r.communicate(timeout=60)
        assert int(out) == expected


def test_write_error_in_worker_process_is_reported(tree: Path, tmp_path: Path) -> None:
    """Shards of ~500 KB against a 200 KB file-size limit: the write fails in a worker process,
    and the parent reports it in one line and removes the partial pack."""
    big = make_demo_tree(tmp_path / "big", per_class=60, size=48)
    proc = subprocess.run(
        [sys.executable, "-m", "packer", "convert", str(big), str(tmp_path / "w.pack"), "-f", "tar",
         "--workers", "2", "--samples-per-shard", "120"],
        capture_output=True, text=True, preexec_fn=_limit_file_size, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    assert "File too large" in proc.stderr and "free some disk space" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "w.pack").exists()
    assert not partial_path(tmp_path / "w.pack").exists()
