"""`pack extract`: convert -> extract is lossless, and hostile keys never escape OUT."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from packer import convert
from packer.backends.registry import backend_names
from packer.cli.main import app
from packer.errors import OutputError, PackError
from packer.format.keys import safe_relative
from packer.read.extract import extract
from packer.testing import make_edge_tree


@pytest.fixture(scope="module")
def clean_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An edge tree with only packable files (so diff -r can be exact), plus a non-UTF-8 name."""
    root = make_edge_tree(tmp_path_factory.mktemp("src") / "tree")
    for junk in (
        "cat/.hidden.jpg",
        "cat/Thumbs.db",
        "cat/notes.txt",
        "dog/.DS_Store",
        "top-level.jpg",
    ):
        (root / junk).unlink()
    raw = os.fsencode(root) + b"/dog/caf\xe9.png"
    with open(raw, "wb") as f:
        f.write((root / "cat" / "b.png").read_bytes())
    return root


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)

    def clean(c: filecmp.dircmp[str]) -> bool:
        if c.left_only or c.right_only or c.funny_files:
            return False
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
        return not mismatch and not errors and all(clean(sub) for sub in c.subdirs.values())

    return clean(cmp)


@pytest.mark.parametrize("backend", backend_names())
def test_convert_then_extract_is_lossless(clean_tree: Path, tmp_path: Path, backend: str) -> None:
    convert(clean_tree, tmp_path / "p", backend, samples_per_shard=4)
    report = extract(tmp_path / "p", tmp_path / "out")
    assert _same_tree(clean_tree, tmp_path / "out")
    assert report.files == sum(1 for p in clean_tree.rglob("*") if p.is_file())


def test_existing_files_need_force(clean_tree: Path, tmp_path: Path) -> None:
    convert(clean_tree, tmp_path / "p", "zip")
    extract(tmp_path / "p", tmp_path / "out")
    victim = tmp_path / "out" / "cat" / "a.jpg"
    victim.write_bytes(b"mine")
    with pytest.raises(OutputError, match="--force"):
        extract(tmp_path / "p", tmp_path / "out")
    assert victim.read_bytes() == b"mine"
    extract(tmp_path / "p", tmp_path / "out", force=True)
    assert victim.read_bytes() == (clean_tree / "cat" / "a.jpg").read_bytes()


@pytest.mark.parametrize("evil", ["../x/aa", "/etc/pas", "cat//bb", "cat/./b", "..", ""])
def test_escaping_names_are_refused(evil: str) -> None:
    with pytest.raises(PackError, match="escape"):
        safe_relative(evil)


def test_hostile_key_in_a_pack_is_refused_before_writing(clean_tree: Path, tmp_path: Path) -> None:
    convert(clean_tree, tmp_path / "p", "tar")
    keys = tmp_path / "p" / "index" / "keys.bin"
    blob = keys.read_bytes()
    assert blob.startswith(b"cat/UPPER")
    keys.write_bytes(b"../../../" + blob[9:])  # same length: the offsets stay valid
    with pytest.raises(PackError, match="escape"):
        extract(tmp_path / "p", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_symlink_in_output_leading_outside_is_refused(clean_tree: Path, tmp_path: Path) -> None:
    convert(clean_tree, tmp_path / "p", "memmap")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "cat").symlink_to(outside)
    with pytest.raises(OutputError, match="outside"):  # the destination's fault: exit code 4
        extract(tmp_path / "p", tmp_path / "out")
    assert list(outside.iterdir()) == []


def test_pixel_packs_cannot_be_extracted(clean_tree: Path, tmp_path: Path) -> None:
    from packer.images.transforms import Transform

    convert(clean_tree, tmp_path / "p", "memmap", transform=Transform(size=(4, 4), mode="L"))
    result = CliRunner().invoke(app, ["extract", str(tmp_path / "p"), str(tmp_path / "out")])
    assert result.exit_code == 5 and "decoded pixels" in result.stderr


def test_cli_extract_json(clean_tree: Path, tmp_path: Path) -> None:
    convert(clean_tree, tmp_path / "p", "arrow")
    result = CliRunner().invoke(
        app, ["extract", str(tmp_path / "p"), str(tmp_path / "out"), "--json"]
    )
    assert result.exit_code == 0
    assert '"files"' in result.stdout


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_extract_a_subset_by_class_and_key(clean_tree: Path, tmp_path: Path) -> None:
    convert(clean_tree, tmp_path / "p", "tar", samples_per_shard=4)
    every = _files(clean_tree)
    dogs = extract(tmp_path / "p", tmp_path / "dogs", classes=["dog"])
    assert _files(tmp_path / "dogs") == {f for f in every if f.startswith("dog/")}
    assert dogs.files == len(_files(tmp_path / "dogs")) > 0
    assert not (tmp_path / "dogs" / "cat").exists()  # only the chosen class folders
    # --keys-from through the CLI, combined with --classes: samples matching both
    some_cat = sorted(f for f in every if f.startswith("cat/"))[:2]
    a_dog = sorted(f for f in every if f.startswith("dog/"))[0]  # listed, but not a cat: left out
    keys = [f.rpartition(".")[0] for f in [*some_cat, a_dog]]
    (tmp_path / "keys.txt").write_text("\n".join(keys) + "\n\n")
    result = CliRunner().invoke(
        app,
        ["extract", str(tmp_path / "p"), str(tmp_path / "two"), "--classes", "cat",
         "--keys-from", str(tmp_path / "keys.txt"), "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert _files(tmp_path / "two") == set(some_cat)
    for name in some_cat:
        assert (tmp_path / "two" / name).read_bytes() == (clean_tree / name).read_bytes()


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--classes", "cat,zebra"], "no class 'zebra'; the classes are: "),
     (["--keys-from", "{keys}"], "no sample has the key 'cat/nope'")],
)  # fmt: skip
def test_unknown_class_or_key_is_one_line_and_writes_nothing(
    clean_tree: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    convert(clean_tree, tmp_path / "p", "zip")
    (tmp_path / "keys.txt").write_text("cat/nope\n")
    argv = [a.format(keys=tmp_path / "keys.txt") for a in args]
    result = CliRunner().invoke(app, ["extract", str(tmp_path / "p"), str(tmp_path / "o"), *argv])
    assert result.exit_code == 2
    assert needle in result.stderr and result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "o").exists()
