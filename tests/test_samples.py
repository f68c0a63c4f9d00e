"""packer.convert_samples: packs from samples in memory, with convert's guarantees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from factories import TreeFactory
from packer import convert, convert_samples, open_pack, verify_pack
from packer.errors import SourceError, UsageError
from packer.format.index import INDEX_FILES
from packer.format.staging import partial_path
from packer.read.extract import extract
from packer.testing import imagefolder_order


@pytest.fixture(scope="module")
def tree(demo_trees: TreeFactory) -> Path:
    return demo_trees(per_class=6, size=16)


def items(tree: Path) -> list[tuple[str, int, bytes, str]]:
    _, samples = imagefolder_order(tree)
    out = []
    for rel, label in samples:
        key, _, ext = rel.rpartition(".")
        out.append((key, label, (tree / rel).read_bytes(), ext))
    return out


class Records:
    """A map-style dataset (as a torch Dataset would be): picklable, indexed, sized."""

    def __init__(self, rows: list[tuple[str, int, bytes, str]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        key, label, data, ext = self.rows[i]
        return {"key": key, "label": label, "data": data, "ext": ext}


def _same_data_and_index(a: Path, b: Path) -> None:
    shards = sorted(p.name for p in a.glob("shard-*"))
    assert shards == sorted(p.name for p in b.glob("shard-*")) and shards
    for name in [*INDEX_FILES, *shards]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_a_generator_gives_the_folder_pack(tree: Path, tmp_path: Path) -> None:
    classes, _ = imagefolder_order(tree)
    # convert_samples fills each shard to the limit: the folder convert's fixed rule
    folder = convert(tree, tmp_path / "folder", "tar", samples_per_shard=5, cut="fixed").path
    report = convert_samples(
        (row for row in items(tree)), tmp_path / "gen", "tar", classes=classes, samples_per_shard=5
    )
    _same_data_and_index(folder, report.path)
    assert report.num_samples == 24 and verify_pack(report.path).ok
    extract(report.path, tmp_path / "out")
    for key, _, data, ext in items(tree):
        assert (tmp_path / "out" / f"{key}.{ext}").read_bytes() == data


def test_a_map_style_input_is_split_over_workers(tree: Path, tmp_path: Path) -> None:
    classes, _ = imagefolder_order(tree)
    dataset = Records(items(tree))
    one = convert_samples(dataset, tmp_path / "one", "zip", classes=classes, samples_per_shard=7)
    two = convert_samples(
        dataset, tmp_path / "two", "zip", classes=classes, samples_per_shard=7, workers=2
    )
    assert one.data_files == 4
    _same_data_and_index(one.path, two.path)
    rows = convert_samples(  # a plain list travels to the workers a shard's slice at a time
        dataset.rows, tmp_path / "rows", "zip", classes=classes, samples_per_shard=7, workers=2
    )
    _same_data_and_index(one.path, rows.path)
    with open_pack(two.path) as p:
        assert [s.key for s in p] == [k for k, _, _, _ in dataset.rows]
        assert p.classes == classes


def test_bad_images_fail_or_are_skipped(tree: Path, tmp_path: Path) -> None:
    classes, _ = imagefolder_order(tree)
    rows = items(tree)
    key, label, data, ext = rows[3]
    rows[3] = (key, label, data[: len(data) // 2], ext)  # a truncated download
    with pytest.raises(SourceError, match=rf"sample 3 \({key}\): truncated"):
        convert_samples(rows, tmp_path / "p", "tar", classes=classes)
    assert not (tmp_path / "p").exists() and not partial_path(tmp_path / "p").exists()
    report = convert_samples(rows, tmp_path / "p", "tar", classes=classes, on_error="skip")
    assert report.num_samples == len(rows) - 1 and [s.path for s in report.skipped] == [key]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda r: r.__setitem__(2, ("../x", 0, b"x", "jpg")), "key '../x' must be a relative path"),
        (lambda r: r.__setitem__(2, (r[1][0], 0, r[2][2], r[2][3])), "is given to two samples"),
        (lambda r: r.__setitem__(2, (r[2][0], 9, r[2][2], r[2][3])), "label 9 is out of range"),
        (lambda r: r.__setitem__(2, (r[2][0], 0, "text", "jpg")), "data must be bytes"),
        (lambda r: r.__setitem__(2, (r[2][0], 0)), "expected (key, label, data, ext)"),
        (lambda r: r.__setitem__(2, (r[2][0], 0, r[2][2], ".jpg")), "must be a bare name"),
    ],
)  # fmt: skip
def test_malformed_input_is_refused_and_nothing_written(
    tree: Path, tmp_path: Path, change: Any, needle: str
) -> None:
    classes, _ = imagefolder_order(tree)
    rows: list[Any] = items(tree)
    change(rows)
    with pytest.raises(UsageError) as info:
        convert_samples(rows, tmp_path / "p", "tar", classes=classes, validate="none")
    assert needle in str(info.value)
    assert not (tmp_path / "p").exists() and not partial_path(tmp_path / "p").exists()


def test_what_users_have_goes_through(tmp_path: Path) -> None:
    """Phone JPEGs padded after the end marker, OS/2 BMPs, 16-bit PNGs and CMYK JPEGs are valid;
    a key holding a byte that is not UTF-8 (as os.listdir gives it) round-trips through extract."""
    import os

    from oddimages import VALID

    names = ["jpeg-phone-padding", "bmp-os2", "png-16bit", "jpeg-cmyk", "tiff-16bit"]
    rows = [(f"odd/{name}", 0, VALID[name][1](), VALID[name][0]) for name in names]
    rows.append(("odd/caf\udce9", 0, VALID["jpeg"][1](), "jpg"))  # b"caf\xe9" from a Latin-1 disk
    report = convert_samples(rows, tmp_path / "p", "tar", classes=["odd"], validate="full")
    assert report.num_samples == len(rows) and not report.skipped
    extract(report.path, tmp_path / "out")
    for key, _, data, ext in rows:
        assert (tmp_path / "out" / f"{key}.{ext}").read_bytes() == data
    assert os.fsencode(tmp_path / "out" / "odd") + b"/caf\xe9.jpg" in [
        os.fsencode(p) for p in (tmp_path / "out" / "odd").iterdir()
    ]
