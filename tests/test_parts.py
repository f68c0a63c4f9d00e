"""Plan, parts, merge: the same pack as one convert, and every bad input refused before DST."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from factories import TreeFactory
from packer import errors
from packer.api import convert, convert_part, merge, save_plan
from packer.backends.registry import BUILTIN_BACKENDS
from packer.cli.main import app
from packer.conversion.parts import parse_part, part_shards
from packer.errors import OutputError, PackError, UsageError
from packer.format.staging import partial_path
from packer.progress import NoProgress
from packer.testing import tree_digest


@pytest.fixture(scope="module")
def tree(edge_trees: TreeFactory) -> Path:
    return edge_trees(extra_per_class=8)


def _parts(plan: Path, base: Path, n: int) -> list[Path]:
    for i in range(n):
        convert_part(plan, f"{i}/{n}", base / f"part-{i}")
    return [base / f"part-{i}" for i in range(n)]


@pytest.mark.parametrize("backend", sorted(BUILTIN_BACKENDS))
def test_parts_merge_to_the_very_pack_one_convert_gives(
    tree: Path, tmp_path: Path, backend: str
) -> None:
    one = convert(tree, tmp_path / "one.pack", backend, samples_per_shard=4).path
    save_plan(tree, tmp_path / "plan", backend, samples_per_shard=4)
    parts = _parts(tmp_path / "plan", tmp_path, 3)
    merged = merge(tmp_path / "plan", parts, tmp_path / "merged.pack")
    assert tree_digest(merged.path) == tree_digest(one)
    assert merged.data_files > 3
    for part in parts:  # linked, not moved: every part is still whole after the merge
        assert (part / "part.json").is_file()


def test_more_parts_than_shards_and_a_byte_cut_plan(tree: Path, tmp_path: Path) -> None:
    one = convert(tree, tmp_path / "one.pack", "tar", shard_size="20KB").path
    save_plan(tree, tmp_path / "plan", "tar", shard_size="20KB")
    parts = _parts(tmp_path / "plan", tmp_path, 7)  # some parts hold no shard at all
    merge(tmp_path / "plan", parts, tmp_path / "merged.pack")
    assert tree_digest(tmp_path / "merged.pack") == tree_digest(one)


def test_part_numbers() -> None:
    assert parse_part("3/16") == (3, 16) and parse_part(" 0 / 1 ") == (0, 1)
    for bad in ("16/16", "-1/4", "a/b", "3", "1/0"):
        with pytest.raises(UsageError, match="--part"):
            parse_part(bad)
    blocks = [part_shards(10, i, 4) for i in range(4)]
    assert [list(b) for b in blocks] == [[0, 1], [2, 3, 4], [5, 6], [7, 8, 9]]


@pytest.fixture
def planned(tree: Path, tmp_path: Path) -> tuple[Path, list[Path]]:
    save_plan(tree, tmp_path / "plan", "zip", samples_per_shard=5)
    return tmp_path / "plan", _parts(tmp_path / "plan", tmp_path, 3)


def test_bad_parts_are_refused_and_dst_untouched(
    tree: Path, tmp_path: Path, planned: tuple[Path, list[Path]]
) -> None:
    plan, parts = planned
    dst = tmp_path / "dst.pack"
    # a part of another plan (other options)
    save_plan(tree, tmp_path / "other", "zip", samples_per_shard=6)
    convert_part(tmp_path / "other", "0/3", tmp_path / "foreign")
    cases: list[tuple[list[Path], type[Exception], str]] = [
        ([parts[0], parts[2]], UsageError, "in none of the parts"),
        ([*parts, parts[1]], UsageError, "pass each part once"),
        ([tmp_path / "foreign", parts[1], parts[2]], UsageError, "another plan"),
        ([*parts[:2], tmp_path / "nowhere"], UsageError, "not a finished part"),
    ]
    for given, error, message in cases:
        with pytest.raises(error, match=message):
            merge(plan, given, dst)
        assert not dst.exists() and not partial_path(dst).exists()


def test_a_part_still_being_written_is_named(
    tmp_path: Path, planned: tuple[Path, list[Path]]
) -> None:
    plan, parts = planned
    busy = tmp_path / "busy"
    partial_path(busy).mkdir()
    with pytest.raises(UsageError, match="busy: not a finished part.*still being written"):
        merge(plan, [*parts, busy], tmp_path / "dst.pack")


def test_a_tampered_data_file_is_refused(tmp_path: Path, planned: tuple[Path, list[Path]]) -> None:
    plan, parts = planned
    data = sorted(parts[1].glob("shard-*.zip"))[0]
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))
    with pytest.raises(PackError, match="tampered"):
        merge(plan, parts, tmp_path / "dst.pack")
    assert not (tmp_path / "dst.pack").exists()


def test_a_tampered_data_file_leaves_an_existing_dst_as_it_was(
    tmp_path: Path, planned: tuple[Path, list[Path]]
) -> None:
    """The sha256 checks run while the index is written: a mismatch must still stop the merge
    before the commit, so ``--force`` over an existing pack keeps that pack."""
    plan, parts = planned
    merge(plan, parts, tmp_path / "dst.pack")
    before = tree_digest(tmp_path / "dst.pack")
    data = sorted(parts[-1].glob("shard-*.zip"))[-1]
    blob = bytearray(data.read_bytes())
    blob[-100] ^= 0xFF
    fresh = data.with_name("fresh")
    fresh.write_bytes(bytes(blob))
    fresh.replace(data)  # a new inode: the merged pack's hard link keeps the old bytes
    with pytest.raises(PackError, match=f"{data.name}: does not match its recorded sha256"):
        merge(plan, parts, tmp_path / "dst.pack", force=True)
    assert tree_digest(tmp_path / "dst.pack") == before
    assert [p.name for p in tmp_path.iterdir() if "dst" in p.name] == ["dst.pack"]


def test_a_damaged_shard_record_is_named_and_dst_stays_untouched(
    tmp_path: Path, planned: tuple[Path, list[Path]]
) -> None:
    """Records' arrays are read only as the index is written: a damaged one still fails the
    merge with its name, before anything is committed."""
    plan, parts = planned
    record = sorted((parts[2] / "records").glob("shard-*.npz"))[0]
    record.write_bytes(record.read_bytes()[:50])
    with pytest.raises(PackError, match=f"{record.name}: unreadable shard record"):
        merge(plan, parts, tmp_path / "dst.pack")
    assert not any("dst" in p.name for p in tmp_path.iterdir())


def test_other_library_versions_are_refused(
    tmp_path: Path, planned: tuple[Path, list[Path]]
) -> None:
    plan, parts = planned
    doc = json.loads((parts[2] / "part.json").read_text())
    doc["versions"]["numpy"] = "0.0.1"
    (parts[2] / "part.json").write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="same packer and library versions"):
        merge(plan, parts, tmp_path / "dst.pack")


def test_an_existing_dst_needs_force(tmp_path: Path, planned: tuple[Path, list[Path]]) -> None:
    plan, parts = planned
    merge(plan, parts, tmp_path / "dst.pack")
    before = tree_digest(tmp_path / "dst.pack")
    with pytest.raises(OutputError, match="already exists"):
        merge(plan, parts, tmp_path / "dst.pack")
    merge(plan, parts, tmp_path / "dst.pack", force=True)
    assert tree_digest(tmp_path / "dst.pack") == before


def test_a_damaged_plan_is_refused(tmp_path: Path, planned: tuple[Path, list[Path]]) -> None:
    plan, _ = planned
    shutil.copytree(plan, tmp_path / "edited")
    labels = tmp_path / "edited" / "labels.npy"
    raw = bytearray(labels.read_bytes())
    raw[-1] ^= 0x01
    labels.write_bytes(bytes(raw))
    with pytest.raises(PackError, match="do not match its digest"):
        convert_part(tmp_path / "edited", "0/2", tmp_path / "p")


class _StopAfter(NoProgress):
    """Interrupts a run after ``n`` shards, as Ctrl-C would."""

    def __init__(self, n: int) -> None:
        self.left = n

    def advance(self, samples: int, nbytes: int) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


@pytest.mark.parametrize("workers", [1, 2])
def test_a_part_resumes_from_its_finished_shards(tree: Path, tmp_path: Path, workers: int) -> None:
    save_plan(tree, tmp_path / "plan", "tar", samples_per_shard=3)
    with pytest.raises(KeyboardInterrupt):
        convert_part(
            tmp_path / "plan",
            "0/1",
            tmp_path / "p",
            resume=True,
            workers=workers,
            progress=_StopAfter(3),
        )
    staged = partial_path(tmp_path / "p")
    names = ["shard-00000.tar", "shard-00001.tar"]  # recorded before the third shard stopped it
    inodes = [(staged / name).stat().st_ino for name in names]
    convert_part(tmp_path / "plan", "0/1", tmp_path / "p", resume=True, workers=workers)
    # reused, not rewritten (a shard written by a pool worker must be found at its plan position)
    assert [(tmp_path / "p" / name).stat().st_ino for name in names] == inodes
    merge(tmp_path / "plan", [tmp_path / "p"], tmp_path / "merged.pack")
    one = convert(tree, tmp_path / "one.pack", "tar", samples_per_shard=3).path
    assert tree_digest(tmp_path / "merged.pack") == tree_digest(one)


def test_cli_plan_parts_merge(tree: Path, tmp_path: Path) -> None:
    runner = CliRunner()

    def run(*args: object) -> tuple[int, str, str]:
        result = runner.invoke(app, [str(a) for a in args])
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = run(
        "plan", tree, tmp_path / "plan", "-f", "memmap", "--samples-per-shard", "6", "--json"
    )
    assert code == 0 and json.loads(out)["shards"] > 2
    for i in range(2):
        code, out, _ = run(
            "convert", "--plan", tmp_path / "plan", "--part", f"{i}/2", tmp_path / f"p{i}", "--json"
        )
        assert code == 0 and json.loads(out)["part"] == i
    code, out, _ = run(
        "merge", tmp_path / "plan", tmp_path / "p0", tmp_path / "p1", tmp_path / "m", "--json"
    )
    assert code == 0 and json.loads(out)["num_samples"] > 0
    one = convert(tree, tmp_path / "one", "memmap", samples_per_shard=6).path
    assert tree_digest(tmp_path / "m") == tree_digest(one)
    code, _, err = run("merge", tmp_path / "plan", tmp_path / "p0", tmp_path / "m2")
    assert code == errors.EXIT_USAGE and "in none of the parts" in err and err.count("\n") == 1
    code, _, err = run("convert", "--plan", tmp_path / "plan", tmp_path / "p9")
    assert code == errors.EXIT_USAGE and "--part" in err
    code, _, err = run("convert", tree)
    assert code == errors.EXIT_USAGE and "SRC and DST" in err
