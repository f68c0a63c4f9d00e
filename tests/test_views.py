"""Views: composable index arrays over a pack's labels; no data file is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from factories import TreeFactory
from packer import convert, open_pack
from packer.errors import UsageError
from packer.read.pack import Pack
from packer.read.views import View


@pytest.fixture(scope="module")
def pack(demo_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Pack:
    return open_pack(convert(demo_tree, tmp_path_factory.mktemp("v") / "p", "memmap").path)


def test_classes_keep_and_drop(pack: Pack) -> None:
    v = View(pack).classes(keep=["circle", 3])
    assert set(v.labels.tolist()) == {0, 3} and len(v) == 24
    assert set(View(pack).classes(drop=["circle"]).labels.tolist()) == {1, 2, 3}
    with pytest.raises(UsageError, match="unknown class"):
        View(pack).classes(keep=["dragon"])


def test_percent_first_last_compose(pack: Pack) -> None:
    train, val = View(pack).percent(0, 75), View(pack).percent(75, 100)
    assert len(train) + len(val) == len(pack)
    assert not set(train.indices.tolist()) & set(val.indices.tolist())
    assert View(pack).first(5).indices.tolist() == [0, 1, 2, 3, 4]
    assert View(pack).last(2).indices.tolist() == [len(pack) - 2, len(pack) - 1]
    assert View(pack).classes(keep=["square"]).first(3).labels.tolist() == [1, 1, 1]
    assert len(View(pack).last(0)) == 0


def test_shuffle_is_seeded(pack: Pack) -> None:
    a, b = View(pack).shuffle(1), View(pack).shuffle(1)
    assert np.array_equal(a.indices, b.indices)
    assert sorted(a.indices.tolist()) == list(range(len(pack)))
    assert not np.array_equal(a.indices, View(pack).shuffle(2).indices)


def test_repeat_and_balanced(pack: Pack) -> None:
    assert len(View(pack).first(5).repeat(12)) == 12
    skewed = View(pack, np.r_[np.arange(12), np.arange(12, 15)])  # 12 circles, 3 squares
    balanced = skewed.balanced(seed=0)
    assert np.bincount(balanced.labels).tolist() == [12, 12]
    assert set(balanced.indices.tolist()) <= set(skewed.indices.tolist())
    assert np.bincount(skewed.balanced(seed=0, per_class=2).labels).tolist() == [2, 2]


def test_bad_indices(pack: Pack) -> None:
    with pytest.raises(UsageError):
        View(pack, [len(pack)])
    with pytest.raises(UsageError):
        View(pack).percent(50, 10)


def test_iteration_of_ascii_keys_matches_random_access(
    pack: Pack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pack, "block_rows", 7)
    assert list(pack) == [pack[i] for i in range(len(pack))]
    assert all(s.key.isascii() for s in pack)


@pytest.mark.parametrize("fmt", ["memmap", "zip", "tar", "lmdb"])
@pytest.mark.parametrize("block_rows", [3, 5, 7, 4096])
def test_sequential_reads_cross_data_files_exactly(
    demo_trees: TreeFactory, tmp_path: Path, fmt: str, block_rows: int
) -> None:
    """Blocks of index rows that span shards (the default layout cuts ~2,000 samples a shard, a
    block is 4,096 rows) give every payload once, in order: the source files' bytes."""
    from packer.testing import imagefolder_order

    tree = demo_trees(per_class=6, size=16)
    path = convert(tree, tmp_path / "p.pack", fmt, samples_per_shard=5, cut="fixed").path
    _, samples = imagefolder_order(tree)
    with open_pack(path) as pack:
        pack.block_rows = block_rows
        assert len(pack.manifest.data_files) == 5
        got = list(pack.iter_raw())
    assert got == [((tree / rel).read_bytes(), label) for rel, label in samples]
