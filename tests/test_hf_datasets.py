"""Arrow and Parquet packs load in Hugging Face `datasets` with Image and ClassLabel features,
through the dataset card the pack carries; packer's own reads are unchanged."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from factories import TreeFactory, copy_tree
from packer import convert, open_pack, verify_pack
from packer.testing import imagefolder_order


@pytest.fixture(scope="module")
def tree(demo_trees: TreeFactory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_tree(demo_trees(per_class=5, size=16), tmp_path_factory.mktemp("src") / "tree")
    (root / 'quote "and" colon: class').mkdir()  # a class name YAML must quote
    (root / 'quote "and" colon: class' / "a.png").write_bytes(
        (root / "square" / "square_0003.png").read_bytes()
    )
    return root


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_load_dataset_gives_images_and_class_labels(tree: Path, tmp_path: Path, fmt: str) -> None:
    datasets = pytest.importorskip("datasets")
    pack = convert(tree, tmp_path / "p", fmt, samples_per_shard=7).path
    ds = datasets.load_dataset(str(pack), split="train", cache_dir=str(tmp_path / "cache"))
    classes, samples = imagefolder_order(tree)
    assert isinstance(ds.features["data"], datasets.Image)
    assert isinstance(ds.features["label"], datasets.ClassLabel)
    assert ds.features["label"].names == classes
    assert len(ds) == len(samples)
    for row, (rel, label) in zip(ds, samples, strict=True):
        assert row["label"] == label and row["key"] == rel.rpartition(".")[0]
        with Image.open(tree / rel) as source:
            assert np.array_equal(np.asarray(row["data"]), np.asarray(source))
    with open_pack(pack) as p:  # packer's own reads: the same bytes as before
        assert [p.read(i) for i in range(len(p))] == [(tree / r).read_bytes() for r, _ in samples]
    assert verify_pack(pack).ok


def test_a_pack_of_non_images_loads_as_binary(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    for cls in ("a", "b"):
        (tmp_path / "src" / cls).mkdir(parents=True)
        np.save(tmp_path / "src" / cls / "x.npy", np.arange(3))
    pack = convert(tmp_path / "src", tmp_path / "p", "parquet", extensions="npy").path
    ds = datasets.load_dataset(str(pack), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.features["data"] == datasets.Value("binary")
    assert np.array_equal(np.load(io.BytesIO(ds[0]["data"])), np.arange(3))


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_the_hf_layout_loads_from_its_files_alone(tree: Path, tmp_path: Path, fmt: str) -> None:
    """``-o layout=hf``: ``load_dataset("parquet"|"arrow", data_files=...)`` with no card gives
    an Image column and a ClassLabel with the class names, from the shards' own schema."""
    datasets = pytest.importorskip("datasets")
    pack = convert(tree, tmp_path / "p", fmt, samples_per_shard=7, options={"layout": "hf"}).path
    files = sorted(str(p) for p in pack.glob(f"shard-*.{fmt}"))
    ds = datasets.load_dataset(fmt, data_files=files, split="train", cache_dir=str(tmp_path / "c"))
    classes, samples = imagefolder_order(tree)
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds.features["label"] == datasets.ClassLabel(names=classes)
    assert len(ds) == len(samples)
    for row, (rel, label) in zip(ds, samples, strict=True):
        assert row["label"] == label and row["key"] == rel.rpartition(".")[0]
        with Image.open(tree / rel) as source:
            assert np.array_equal(np.asarray(row["image"]), np.asarray(source))
    card = datasets.load_dataset(str(pack), split="train", cache_dir=str(tmp_path / "c2"))
    assert isinstance(card.features["image"], datasets.Image)  # the folder form too
    with open_pack(pack) as p:  # packer's own reads (arrow: raw ranges into the image bytes)
        assert p.backend.raw_ranges == (fmt == "arrow")
        assert [p.read(i) for i in range(len(p))] == [(tree / r).read_bytes() for r, _ in samples]
    assert verify_pack(pack).ok


def test_an_added_class_rewrites_every_hf_shard(tree: Path, tmp_path: Path) -> None:
    """The hf layout records the class names in every shard: a new class changes them all, and
    an update must give the fresh convert's bytes (the class list is checked, not only labels)."""
    import shutil

    from packer.testing import tree_digest

    src = tmp_path / "src"
    shutil.copytree(tree, src)
    options = {"layout": "hf"}
    dst = convert(src, tmp_path / "p", "parquet", samples_per_shard=7, options=options).path
    (src / "zzz").mkdir()  # sorts last: no label changes, only the class list
    (src / "zzz" / "a.png").write_bytes((tree / "square" / "square_0003.png").read_bytes())
    report = convert(src, dst, "parquet", samples_per_shard=7, options=options, update=True)
    assert report.update is not None
    assert report.update["shards"]["to_rewrite"] == report.update["shards"]["total"]
    fresh = convert(src, tmp_path / "fresh", "parquet", samples_per_shard=7, options=options)
    assert tree_digest(dst) == tree_digest(fresh.path)
