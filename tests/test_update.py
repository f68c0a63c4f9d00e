"""``pack convert --update`` and ``pack status``: nothing written when nothing changed, only the
shards a change touches otherwise, and always the very pack a fresh convert gives."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from packer import convert, open_pack, status, verify_pack
from packer._util.columns import store
from packer._util.files import STATE_DIR
from packer._util.pathtable import PathTable
from packer.api import convert_part, merge, save_plan
from packer.backends.registry import BUILTIN_BACKENDS, make_backend
from packer.cli.main import app
from packer.conversion.report import ConvertReport
from packer.conversion.update import _gather, _match
from packer.errors import EXIT_PROBLEMS_FOUND, EXIT_SOURCE
from packer.format.staging import partial_path
from packer.testing import tree_digest

BACKENDS = sorted(BUILTIN_BACKENDS)


def _png(extra: int) -> bytes:
    """A valid 1x1 PNG with ``extra`` bytes after its end: files of many sizes, cheap to write."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    return buf.getvalue() + bytes(extra)


def _small_tree(root: Path, classes: int = 4, per_class: int = 150) -> Path:
    rng = np.random.default_rng(1)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            (folder / f"{i:05d}.png").write_bytes(_png(int(rng.integers(0, 40))))
    return root


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60k files in 20 classes: the default cut gives it more than 16 shards."""
    return _small_tree(tmp_path_factory.mktemp("big") / "tree", classes=20, per_class=3000)


def _files(pack: Path) -> dict[str, tuple[int, int]]:
    """Every file of a pack folder (its state too) by inode and mtime_ns."""
    return {
        p.relative_to(pack).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(pack.rglob("*"))
        if p.is_file()
    }


def _data_inodes(pack: Path) -> set[int]:
    with open_pack(pack) as opened:
        names = [f.name for f in opened.manifest.data_files]
    return {(pack / name).stat().st_ino for name in names}


def _written(report: ConvertReport) -> int:
    assert report.update is not None
    return int(report.update["shards"]["to_rewrite"])


def _fresh(src: Path, tmp: Path, fmt: str, **kwargs: object) -> dict[str, str]:
    fresh = tmp / f"fresh-{fmt}.pack"
    return tree_digest(convert(src, fresh, fmt, force=True, **kwargs).path)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", BACKENDS)
def test_an_unchanged_tree_writes_nothing(tmp_path: Path, fmt: str) -> None:
    src = _small_tree(tmp_path / "src")
    dst = convert(src, tmp_path / "out.pack", fmt, samples_per_shard=64).path
    before = _files(dst)
    report = convert(src, dst, fmt, samples_per_shard=64, update=True)
    assert report.update is not None and report.update["up_to_date"]
    assert _written(report) == 0 and _files(dst) == before  # same inodes, same mtimes
    assert status(src, dst).up_to_date


@pytest.mark.slow
@pytest.mark.parametrize("fmt", BACKENDS)
def test_one_file_added_changed_removed_rewrites_at_most_two_shards(
    big_tree: Path, tmp_path: Path, fmt: str
) -> None:
    dst = convert(big_tree, tmp_path / "out.pack", fmt).path
    assert len(open_pack(dst).manifest.data_files) >= 16
    added = big_tree / "class7" / "01234a.png"
    changed = big_tree / "class13" / "00042.png"
    removed = big_tree / "class3" / "02900.png"
    kept = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (changed, removed)}
    steps: list[Callable[[], object]] = [
        lambda: added.write_bytes(_png(7)),
        lambda: changed.write_bytes(_png(99)),
        removed.unlink,
    ]
    try:
        for step in steps:
            old = _data_inodes(dst)
            step()
            report = convert(big_tree, dst, fmt, update=True)
            assert report.update is not None and report.update["rebuild"] is None
            assert len(_data_inodes(dst) - old) <= 2, report.update
            assert _written(report) == len(_data_inodes(dst) - old)
            assert tree_digest(dst) == _fresh(big_tree, tmp_path, fmt)
    finally:
        added.unlink(missing_ok=True)
        for path, (data, mtime) in kept.items():
            path.write_bytes(data)
            os.utime(path, ns=(mtime, mtime))


@pytest.mark.parametrize("fmt", BACKENDS)
def test_a_class_added_shifts_labels(tmp_path: Path, fmt: str) -> None:
    """ImageFolder labels: a new class sorting first moves every label up by one. Formats that
    keep labels out of their data files keep those files; the others write them all again."""
    src = _small_tree(tmp_path / "src")
    dst = convert(src, tmp_path / "out.pack", fmt, samples_per_shard=64).path
    old = _data_inodes(dst)
    (src / "aardvark").mkdir()
    for i in range(3):
        (src / "aardvark" / f"{i}.png").write_bytes(_png(i))
    report = convert(src, dst, fmt, samples_per_shard=64, update=True)
    assert report.update is not None and report.update["classes"]["added"] == ["aardvark"]
    assert tree_digest(dst) == _fresh(src, tmp_path, fmt, samples_per_shard=64)
    with open_pack(dst) as pack:
        assert pack.classes[0] == "aardvark" and pack.classes[1] == "class0"
        assert pack.labels[len(pack) - 1] == 4
    kept = len(_data_inodes(dst) & old)
    if make_backend(fmt).labels_in_data:
        assert kept == 0
    else:
        assert kept >= len(old) - 2


def test_tar_without_label_members_keeps_its_shards_when_labels_shift(tmp_path: Path) -> None:
    src = _small_tree(tmp_path / "src")
    options = {"labels": "none"}
    dst = convert(src, tmp_path / "out.pack", "tar", samples_per_shard=64, options=options).path
    old = _data_inodes(dst)
    (src / "aardvark").mkdir()
    (src / "aardvark" / "x.png").write_bytes(_png(0))
    convert(src, dst, "tar", samples_per_shard=64, options=options, update=True)
    assert len(_data_inodes(dst) & old) >= len(old) - 2
    assert tree_digest(dst) == _fresh(src, tmp_path, "tar", samples_per_shard=64, options=options)


def test_a_renamed_file(tmp_path: Path) -> None:
    src = _small_tree(tmp_path / "src")
    dst = convert(src, tmp_path / "out.pack", "zip", samples_per_shard=64).path
    (src / "class2" / "00010.png").rename(src / "class2" / "00010-renamed.png")
    changes = status(src, dst)
    assert (changes.added, changes.removed, changes.changed) == (1, 1, 0)
    report = convert(src, dst, "zip", samples_per_shard=64, update=True)
    assert _written(report) <= 2
    assert tree_digest(dst) == _fresh(src, tmp_path, "zip", samples_per_shard=64)
    with open_pack(dst) as pack:
        assert "class2/00010-renamed" in set(pack.keys())


def test_checksum_catches_a_replacement_with_the_same_size_and_mtime(tmp_path: Path) -> None:
    src = _small_tree(tmp_path / "src")
    dst = convert(src, tmp_path / "out.pack", "lmdb", samples_per_shard=64).path
    victim = src / "class1" / "00100.png"
    stat = victim.stat()
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF  # the padding after IEND: still a valid PNG, other bytes
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert status(src, dst).up_to_date  # timestamps cannot see it
    changes = status(src, dst, checksum=True)
    assert not changes.up_to_date and changes.changed == 1 and len(changes.rewrite) == 1
    report = convert(src, dst, "lmdb", samples_per_shard=64, update=True, checksum=True)
    assert _written(report) == 1
    assert tree_digest(dst) == _fresh(src, tmp_path, "lmdb", samples_per_shard=64)


def test_checksum_ignores_new_timestamps_on_the_same_contents(tmp_path: Path) -> None:
    """A fresh git checkout or a ``cp`` without ``-p``: every mtime new, every byte the same."""
    src = _small_tree(tmp_path / "src")
    dst = convert(src, tmp_path / "out.pack", "hdf5", samples_per_shard=64).path
    for path in src.rglob("*.png"):
        os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    assert status(src, dst).changed == 600
    before = {name: value for name, value in _files(dst).items() if STATE_DIR not in name}
    report = convert(src, dst, "hdf5", samples_per_shard=64, update=True, checksum=True)
    assert report.update is not None and report.update["refreshed_timestamps"] == 600
    after = {name: value for name, value in _files(dst).items() if STATE_DIR not in name}
    assert after == before  # the pack itself untouched; the state learnt the new mtimes
    assert status(src, dst).up_to_date


def test_changed_options_rebuild_everything(tmp_path: Path) -> None:
    src = _small_tree(tmp_path / "src")
    dst = convert(src, tmp_path / "out.pack", "tar", samples_per_shard=64).path
    old = _data_inodes(dst)
    report = convert(src, dst, "tar", samples_per_shard=64, validate="none", update=True)
    assert report.update is not None and report.update["rebuild"] == "options changed (validate)"
    assert not _data_inodes(dst) & old
    assert tree_digest(dst) == _fresh(src, tmp_path, "tar", samples_per_shard=64, validate="none")
    # new shard limits re-cut the tree without a rebuild: shards that come out the same stay
    report = convert(src, dst, "tar", samples_per_shard=80, validate="none", update=True)
    assert report.update is not None and report.update["rebuild"] is None
    assert tree_digest(dst) == _fresh(src, tmp_path, "tar", samples_per_shard=80, validate="none")


def test_a_pack_without_state_is_rebuilt(tmp_path: Path) -> None:
    src = _small_tree(tmp_path / "src")
    dst = convert(src, tmp_path / "out.pack", "arrow", samples_per_shard=64).path
    shutil.rmtree(dst / STATE_DIR)
    assert "no update state" in (status(src, dst).rebuild or "")
    report = convert(src, dst, "arrow", samples_per_shard=64, update=True)
    assert report.update is not None and "no update state" in report.update["rebuild"]
    assert tree_digest(dst) == _fresh(src, tmp_path, "arrow", samples_per_shard=64)


def test_status_command(tmp_path: Path) -> None:
    src = _small_tree(tmp_path / "src")
    dst = tmp_path / "out.pack"
    runner = CliRunner()
    first = runner.invoke(app, ["status", str(src), str(dst), "--json"])
    assert first.exit_code == EXIT_PROBLEMS_FOUND, first.output
    assert "holds no pack yet" in json.loads(first.output)["rebuild"]
    converted = runner.invoke(app, ["convert", str(src), str(dst), "--update", "-q"])
    assert converted.exit_code == 0, converted.output
    ok = runner.invoke(app, ["status", str(src), str(dst), "--checksum", "--json"])
    assert ok.exit_code == 0, ok.output
    document = json.loads(ok.output)
    assert document["up_to_date"] and len(document["fingerprint"]) == 64
    for path in src.rglob("*.png"):  # a fresh checkout: the checksum fingerprint stays
        os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    again = json.loads(
        runner.invoke(app, ["status", str(src), str(dst), "--checksum", "--json"]).output
    )
    assert again["fingerprint"] == document["fingerprint"]
    (src / "class0" / "00000.png").unlink()
    stale = runner.invoke(app, ["status", str(src), str(dst), "--checksum", "--json"])
    assert stale.exit_code == EXIT_PROBLEMS_FOUND
    counts = json.loads(stale.output)
    assert counts["files"] == {"added": 0, "changed": 0, "removed": 1}
    assert counts["shards"]["to_rewrite"] >= 1 and counts["fingerprint"] != document["fingerprint"]
    text = runner.invoke(app, ["status", str(src), str(dst), "--checksum"])
    assert "stale: 0 added, 0 changed, 1 removed" in text.output
    updated = runner.invoke(app, ["convert", str(src), str(dst), "--update"])
    assert updated.exit_code == 0 and "shard(s) written" in updated.output
    missing = runner.invoke(app, ["status", str(tmp_path / "nowhere"), str(dst)])
    assert missing.exit_code == EXIT_SOURCE


# A kill at a chosen point of an update, in a real process: at the commit's swap, or while the
# first new shard is written.
KILLER = """
import os, signal, sys
import packer.format.staging as staging, packer.conversion.runner as runner
from packer.cli.main import main
where = sys.argv.pop(1)
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if where == "swap":
    staging.exchange = die
else:
    runner.write_shard = die
sys.argv = ["pack", "convert", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("where", ["swap", "shard"])
def test_a_killed_update_leaves_the_previous_pack(tmp_path: Path, where: str) -> None:
    src = _small_tree(tmp_path / "src")
    dst = convert(src, tmp_path / "out.pack", "tar", samples_per_shard=64).path
    previous = tree_digest(dst)
    (src / "class1" / "00003.png").unlink()
    args = [
        str(src),
        str(dst),
        "-f",
        "tar",
        "--samples-per-shard",
        "64",
        "--update",
        "-q",
        "--workers",
        "1",
    ]
    proc = subprocess.run([sys.executable, "-c", KILLER, where, *args], timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert tree_digest(dst) == previous  # whole: the old data files were linked, never moved
    assert _written(convert(src, dst, "tar", samples_per_shard=64, update=True)) >= 1
    assert tree_digest(dst) == _fresh(src, tmp_path, "tar", samples_per_shard=64)
    assert not partial_path(dst).exists()


def test_a_merged_pack_updates_like_a_converted_one(tmp_path: Path) -> None:
    src = _small_tree(tmp_path / "src")
    save_plan(src, tmp_path / "plan", "parquet", samples_per_shard=64)
    parts = [tmp_path / f"part-{i}" for i in range(2)]
    for i, part in enumerate(parts):
        convert_part(tmp_path / "plan", f"{i}/2", part)
    dst = merge(tmp_path / "plan", parts, tmp_path / "out.pack").path
    assert tree_digest(dst) == _fresh(src, tmp_path, "parquet", samples_per_shard=64)
    (src / "class3" / "00007.png").write_bytes(_png(50))
    report = convert(src, dst, "parquet", samples_per_shard=64, update=True)
    assert report.update is not None and report.update["rebuild"] is None
    assert _written(report) == 1
    assert tree_digest(dst) == _fresh(src, tmp_path, "parquet", samples_per_shard=64)


def test_a_name_clash_changes_the_keys_of_files_that_did_not_change(tmp_path: Path) -> None:
    """``00005.jpg`` beside ``00005.png``: both keys keep their extension, so the old file's
    key changes and its shard must be written again, though its bytes and mtime did not."""
    src = _small_tree(tmp_path / "src")
    dst = convert(src, tmp_path / "out.pack", "memmap", samples_per_shard=64).path
    (src / "class0" / "00005.jpg").write_bytes(_png(3))
    report = convert(src, dst, "memmap", samples_per_shard=64, update=True)
    assert report.update is not None and report.update["files"]["changed"] == 1
    assert tree_digest(dst) == _fresh(src, tmp_path, "memmap", samples_per_shard=64)
    with open_pack(dst) as pack:
        assert {"class0/00005.png", "class0/00005.jpg"} <= set(pack.keys())


def test_an_update_with_two_workers_is_the_same_update(tmp_path: Path) -> None:
    src = _small_tree(tmp_path / "src")
    dst = convert(src, tmp_path / "out.pack", "tar", samples_per_shard=64, workers=2).path
    old = _data_inodes(dst)
    (src / "class1" / "00007.png").unlink()
    (src / "class3" / "extra.png").write_bytes(_png(11))
    report = convert(src, dst, "tar", samples_per_shard=64, update=True, workers=2)
    assert 1 <= _written(report) <= 4 and len(_data_inodes(dst) & old) >= len(old) - 4
    assert tree_digest(dst) == _fresh(src, tmp_path, "tar", samples_per_shard=64, workers=1)


def _users_tree(root: Path) -> Path:
    """What users really have (tests/test_real_trees.py: padded phone JPEGs, OS/2 and v5 BMPs,
    16-bit and CMYK images, EXIF rotation, macOS junk, a non-UTF-8 name, names differing only
    by extension), plus a symlink loop and a link out of the tree."""
    from test_real_trees import real_tree

    real_tree(root)
    os.symlink("..", root / "photos" / "loop")
    outside = root.parent / "outside.jpg"
    outside.write_bytes((root / "stray.jpg").read_bytes())
    os.symlink(outside, root / "photos" / "escapes.jpg")
    return root


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_updates_on_the_trees_users_have(tmp_path: Path, fmt: str) -> None:
    from oddimages import VALID

    src = _users_tree(tmp_path / "src")
    dst = convert(src, tmp_path / "out.pack", fmt, samples_per_shard=8).path
    before = _files(dst)
    assert status(src, dst).up_to_date
    assert _written(convert(src, dst, fmt, samples_per_shard=8, update=True)) == 0
    assert _files(dst) == before  # the loop, the escaping link and the junk change nothing
    (src / "scans" / "latin1-\udce9.png").unlink()  # the non-UTF-8 name goes
    (src / "scans" / "phone-2.jpg").write_bytes(VALID["jpeg-phone-padding"][1]())
    (src / "photos" / "star.png").write_bytes((src / "photos" / "a.png.png").read_bytes())
    changes = status(src, dst)
    assert (changes.added, changes.changed, changes.removed) == (1, 1, 1)
    convert(src, dst, fmt, samples_per_shard=8, update=True)
    assert tree_digest(dst) == _fresh(src, tmp_path, fmt, samples_per_shard=8)
    assert verify_pack(dst).ok


@given(
    values=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=300),
    picks=st.lists(st.integers(0, 10_000), max_size=50),
)
@settings(max_examples=50, deadline=None)
def test_gather_reads_the_rows_it_needs_from_a_column(
    tmp_path_factory: pytest.TempPathFactory, values: list[int], picks: list[int]
) -> None:
    """The update compares old rows a block at a time through ``_gather``: it must be exactly
    ``column[at]`` for a column on disk and in memory, in any order."""
    array = np.array(values, dtype="<i8")
    at = np.array([p % len(values) for p in picks], dtype=np.int64)
    column = store([array], "<i8", tmp_path_factory.mktemp("gather") / "c.npy")
    assert _gather(column, at).tolist() == array[at].tolist()
    assert _gather(array, at).tolist() == array[at].tolist()


#: File names as a file system gives them: any character but NUL, and bytes that are not UTF-8
#: (as os.fsdecode gives them: U+DC80..U+DCFF).
_NAMES = st.text(
    st.one_of(
        st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
        st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF),
    ),
    min_size=1,
    max_size=6,
)


@given(
    old=st.lists(_NAMES, max_size=60, unique=True),
    new=st.lists(_NAMES, max_size=60, unique=True),
    block=st.integers(1, 7),
)
@settings(max_examples=100, deadline=None)
def test_match_finds_each_new_path_at_its_old_position(
    old: list[str], new: list[str], block: int
) -> None:
    """An update pairs every path of the new scan with the same path in the old plan, in any
    order and across block boundaries; a path the old plan lacks gets -1."""
    where = {path: i for i, path in enumerate(old)}
    expected = [where.get(path, -1) for path in new]
    got = _match(PathTable.from_strings(old), PathTable.from_strings(new), block=block)
    assert got.tolist() == expected
