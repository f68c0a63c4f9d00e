"""Arrow and Parquet packs load in Hugging Face `datasets` with Image and ClassLabel features,
through the dataset card the pack carries; packer's own reads are unchanged."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from packer import convert, open_pack, verify_pack
from packer.demo import make_demo_tree
from packer.testing import imagefolder_order


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_demo_tree(tmp_path_factory.mktemp("src") / "tree", per_class=5, size=16)
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
