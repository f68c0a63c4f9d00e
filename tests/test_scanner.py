"""Scanning follows torchvision's ImageFolder exactly, and survives hostile trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packer.errors import SourceError
from packer.format.keys import sample_key
from packer.source.scanner import scan_tree
from packer.testing import imagefolder_order, make_edge_tree


def test_order_and_labels_match_imagefolder(tmp_path: Path) -> None:
    root = make_edge_tree(tmp_path / "t")
    scan = scan_tree(root)
    classes, expected = imagefolder_order(root)
    assert scan.classes == classes == ["cat", "dog", "dog-x", "empty"]
    assert list(zip(scan.paths, scan.labels.tolist(), strict=True)) == expected
    # notes.txt and the top-level file, plus hidden files and OS junk: each counted by reason
    assert scan.ignored.by_reason["at the root (no class)"] == 1
    assert scan.ignored.by_reason["extension .txt"] == 1
    assert scan.ignored.by_reason["hidden or OS junk"] >= 1


names = st.text(
    alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=12,
).filter(
    lambda s: not s.startswith(".") and s.lower() not in {"thumbs.db", "desktop.ini", "__macosx"}
)


@settings(max_examples=30, deadline=None)
@given(
    layout=st.lists(st.tuples(names, st.lists(names, max_size=2), names), min_size=1, max_size=12)
)
def test_random_trees_match_imagefolder(
    tmp_path_factory: pytest.TempPathFactory, layout: list[tuple[str, list[str], str]]
) -> None:
    root = tmp_path_factory.mktemp("tree")
    made = set()
    for cls, subdirs, stem in layout:
        folder = root.joinpath(cls, *subdirs)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{stem}.jpg"
            if path.exists() or (folder / stem).is_dir():
                continue
            path.write_bytes(b"x")
        except (OSError, NotADirectoryError, FileExistsError):
            continue  # a name the filesystem refuses, or a file where a folder should be
        made.add(path)
    scan = scan_tree(root)
    classes, expected = imagefolder_order(root)
    assert scan.classes == classes
    assert list(zip(scan.paths, scan.labels.tolist(), strict=True)) == expected


def test_symlink_loop_and_broken_link(tmp_path: Path) -> None:
    (tmp_path / "c" / "sub").mkdir(parents=True)
    (tmp_path / "c" / "x.jpg").write_bytes(b"1")
    os.symlink(tmp_path / "c", tmp_path / "c" / "sub" / "loop")
    os.symlink(tmp_path / "nowhere.jpg", tmp_path / "c" / "dangling.jpg")
    with pytest.raises(SourceError, match="broken symbolic link"):
        scan_tree(tmp_path)
    scan = scan_tree(tmp_path, on_bad_file=lambda s: None)
    assert scan.paths == ["c/x.jpg"]


def test_non_utf8_names_survive(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/c/caf\xe9.jpg"
    (tmp_path / "c").mkdir()
    with open(raw, "wb") as f:
        f.write(b"1")
    scan = scan_tree(tmp_path)
    key, ext = sample_key(scan.paths[0], False)
    assert os.fsencode(key) == b"c/caf\xe9" and ext == "jpg"


def test_missing_and_file_sources(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such folder"):
        scan_tree(tmp_path / "missing")
    (tmp_path / "f").write_text("x")
    with pytest.raises(SourceError, match="not a folder"):
        scan_tree(tmp_path / "f")
