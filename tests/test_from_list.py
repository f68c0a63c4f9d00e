"""`pack convert --from-list`: a path,label table gives the same pack as the folder tree it
describes, in row order, and every bad row is one error naming its line."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from factories import TreeFactory, copy_tree
from packer import convert, errors, open_pack
from packer.cli.main import app
from packer.format.index import INDEX_FILES
from packer.testing import imagefolder_order


@pytest.fixture(scope="module")
def tree(demo_trees: TreeFactory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_tree(demo_trees(per_class=6, size=16), tmp_path_factory.mktemp("src") / "tree")
    (root / "square" / "star.png").write_bytes((root / "square" / "square_0003.png").read_bytes())
    (root / "square" / "star.jpg").write_bytes((root / "square" / "square_0001.jpg").read_bytes())
    return root


def _write_list(
    path: Path, rows: list[tuple[str, str]], sep: str = ",", header: bool = False
) -> Path:
    lines = ([f"path{sep}label"] if header else []) + [f"{p}{sep}{label}" for p, label in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _same_pack(a: Path, b: Path) -> None:
    names = [*INDEX_FILES, *(p.name for p in a.glob("shard-*"))]
    assert sorted(p.name for p in a.glob("shard-*")) == sorted(p.name for p in b.glob("shard-*"))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    with open_pack(a) as pa, open_pack(b) as pb:
        assert pa.classes == pb.classes


def test_a_list_of_the_tree_gives_the_folder_pack(tree: Path, tmp_path: Path) -> None:
    classes, samples = imagefolder_order(tree)
    rows = [(rel, classes[label]) for rel, label in samples]
    listing = _write_list(tmp_path / "train.csv", rows, header=True)
    folder = convert(tree, tmp_path / "folder.pack", "tar", samples_per_shard=5).path
    listed = convert(tree, tmp_path / "list.pack", "tar", samples_per_shard=5, from_list=listing)
    _same_pack(folder, listed.path)
    assert open_pack(listed.path).manifest.created_by["from_list"] == "train.csv"
    two = convert(
        tree, tmp_path / "two.pack", "tar", samples_per_shard=5, from_list=listing, workers=2
    )
    _same_pack(listed.path, two.path)


def test_row_order_integer_labels_and_a_classes_file(tree: Path, tmp_path: Path) -> None:
    classes, samples = imagefolder_order(tree)
    shuffled = samples[:]
    random.Random(0).shuffle(shuffled)
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(reversed(classes)) + "\n")  # label i = line i
    rows = [(rel, str(len(classes) - 1 - label)) for rel, label in shuffled]
    listing = _write_list(tmp_path / "val.tsv", rows, sep="\t")
    pack = convert(tree, tmp_path / "p", "zip", from_list=listing, classes_file=names).path
    with open_pack(pack) as p:
        assert p.classes == list(reversed(classes))
        for i, (rel, label) in enumerate(shuffled):
            assert p[i].data == (tree / rel).read_bytes()
            assert p.classes[p.label(i)] == classes[label]
    plain = _write_list(tmp_path / "plain.csv", [(r, "3") for r, _ in shuffled[:2]])
    with open_pack(convert(tree, tmp_path / "q", "zip", from_list=plain).path) as p:
        assert p.classes == ["0", "1", "2", "3"] and np.array_equal(p.labels, [3, 3])


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ("circle/circle_0000.jpg,circle\ncircle/circle_0001.jpg\n", "list.csv:2: expected 'path,label'"),
        ("../secret.jpg,circle\n", "list.csv:1: path '../secret.jpg' must be relative"),
        ("/etc/passwd,circle\n", "list.csv:1: path '/etc/passwd' must be relative"),
        ("a.jpg,x\n\nb.jpg,y\na.jpg,x\n", "list.csv:4: a.jpg is listed twice (first on line 1)"),
        ("circle/circle_0000.jpg,7\n", "list.csv:1: label 7 is out of range (0..1)"),
        ("circle/circle_0000.jpg,zebra\n", "list.csv:1: class 'zebra' is not in the classes file"),
        ("", "list.csv: no rows"),
    ],
)  # fmt: skip
def test_a_bad_row_is_one_line_naming_it(
    tree: Path, tmp_path: Path, rows: str, needle: str
) -> None:
    (tmp_path / "list.csv").write_text(rows)
    (tmp_path / "classes.txt").write_text("circle\nsquare\n")
    extra = (
        ["--classes-file", str(tmp_path / "classes.txt")] if "zebra" in rows or ",7" in rows else []
    )
    result = CliRunner().invoke(
        app,
        [
            "convert",
            "--from-list",
            str(tmp_path / "list.csv"),
            str(tree),
            str(tmp_path / "p"),
            *extra,
        ],
    )
    assert result.exit_code == errors.EXIT_SOURCE, result.output
    assert needle in result.stderr and result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "p").exists()


def test_a_listed_file_that_is_missing_or_broken(tree: Path, tmp_path: Path) -> None:
    listing = _write_list(
        tmp_path / "l.csv", [("circle/circle_0000.jpg", "circle"), ("circle/gone.jpg", "circle")]
    )
    with pytest.raises(errors.SourceError, match=r"gone\.jpg: cannot read"):
        convert(tree, tmp_path / "p", "tar", from_list=listing)
    report = convert(tree, tmp_path / "p", "tar", from_list=listing, on_error="skip")
    assert report.num_samples == 1 and [s.path for s in report.skipped] == ["circle/gone.jpg"]


def test_list_options_are_checked(tree: Path, tmp_path: Path) -> None:
    listing = _write_list(tmp_path / "l.csv", [("circle/circle_0000.jpg", "circle")])
    with pytest.raises(errors.UsageError, match="--extensions filters a folder scan"):
        convert(tree, tmp_path / "p", "tar", from_list=listing, extensions="png")
    with pytest.raises(errors.UsageError, match="--classes-file goes with --from-list"):
        convert(tree, tmp_path / "p", "tar", classes_file=listing)
