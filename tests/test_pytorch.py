"""PyTorch datasets: exactly-once coverage under workers, ranks, fork/spawn; resume; no leaks."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from factories import TreeFactory  # noqa: E402
from packer import convert, open_pack  # noqa: E402
from packer.backends.registry import backend_names  # noqa: E402
from packer.pytorch import PackDataset, PackIterableDataset, PackSampler  # noqa: E402
from packer.read.views import View  # noqa: E402
from packer.testing import imagefolder_order  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def source(edge_trees: TreeFactory) -> Path:
    return edge_trees(extra_per_class=7)


@pytest.fixture(scope="module")
def packs(source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("packs")
    return {
        name: convert(source, root / name, name, samples_per_shard=5).path
        for name in backend_names()
    }


def _source_samples(source: Path) -> list[tuple[int, int]]:
    """(CRC-32 of the file's bytes, label) of each source file in ImageFolder order: the oracle
    is the tree, not packer's reader (a pack is in that order, see the ImageFolder test)."""
    _, samples = imagefolder_order(source)
    return [(zlib.crc32((source / rel).read_bytes()), label) for rel, label in samples]


def _expected(source: Path) -> list[tuple[int, int]]:
    return sorted(_source_samples(source))


def _crc_label(item: tuple[bytes, int]) -> tuple[int, int]:
    return zlib.crc32(item[0]), int(item[1])


def _loader_cases() -> list[Any]:
    """Every backend without workers and with forked workers; spawned workers (~1 s each, a fresh
    interpreter) for one backend in the default run and for the rest under the ``slow`` mark."""
    cases: list[Any] = []
    for backend in backend_names():
        cases += [(backend, 0, None), (backend, 2, "fork")]
        marks = () if backend == "tar" else (pytest.mark.slow,)
        cases.append(pytest.param(backend, 2, "spawn", marks=marks))
    return cases


@pytest.mark.parametrize(("backend", "workers", "context"), _loader_cases())
@pytest.mark.parametrize("style", ["map", "iterable"])
def test_every_sample_exactly_once_per_epoch(
    packs: dict[str, Path],
    source: Path,
    backend: str,
    workers: int,
    context: str | None,
    style: str,
) -> None:
    path = packs[backend]
    ds: Any = (
        PackDataset(path, decode="bytes")
        if style == "map"
        else PackIterableDataset(path, decode="bytes", seed=3)
    )
    kwargs: dict[str, Any] = {"num_workers": workers, "batch_size": None}
    if workers:
        kwargs["multiprocessing_context"] = context
    if style == "map":
        kwargs["shuffle"] = True
    seen = sorted(_crc_label(item) for item in DataLoader(ds, **kwargs))
    assert seen == _expected(source)


def test_two_ranks_two_workers_cover_once_with_equal_counts(
    packs: dict[str, Path], source: Path
) -> None:
    path = packs["memmap"]
    n = len(open_pack(path))
    view = View(open_pack(path)).first(n - n % 2)  # an even count: exact cover without padding
    per_rank = []
    for rank in range(2):
        ds = PackIterableDataset(
            path, decode="bytes", rank=rank, world_size=2, indices=view, seed=5
        )
        loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork")
        per_rank.append([_crc_label(x) for x in loader])
    assert len(per_rank[0]) == len(per_rank[1]) == len(view) // 2
    all_seen = sorted(per_rank[0] + per_rank[1])
    files = _source_samples(source)
    assert all_seen == sorted(files[int(i)] for i in view.indices)


@pytest.mark.parametrize("drop_last", [False, True])
def test_uneven_count_pads_or_drops_but_ranks_stay_equal(
    packs: dict[str, Path], drop_last: bool
) -> None:
    path = packs["tar"]
    n = len(open_pack(path))
    view = View(open_pack(path)).first(n - 1 + n % 2)  # an odd count
    counts = []
    union: set[int] = set()
    for rank in range(3):
        ds = PackIterableDataset(
            path, labels_only=True, rank=rank, world_size=3, indices=view, drop_last=drop_last
        )
        order = ds.rank_order()
        counts.append(len(list(ds)))
        union.update(int(view.indices[p]) for p in order)
    assert len(set(counts)) == 1
    if drop_last:
        assert counts[0] == len(view) // 3
    else:
        assert union == set(view.indices.tolist()) and counts[0] == -(-len(view) // 3)


# 3 workers on a 2-core machine is the point of the test, not a mistake.
@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
@pytest.mark.parametrize("workers", [0, 1, 2, 3])
def test_same_seed_same_order_for_any_worker_count(packs: dict[str, Path], workers: int) -> None:
    path = packs["arrow"]

    def run(num_workers: int) -> list[int]:
        ds = PackIterableDataset(path, decode="bytes", seed=11, batch_size=4, block_size=3)
        kwargs: dict[str, Any] = {"multiprocessing_context": "fork"} if num_workers else {}
        loader = DataLoader(ds, batch_size=4, num_workers=num_workers, collate_fn=list, **kwargs)
        return [zlib.crc32(x[0]) for batch in loader for x in batch]

    assert run(workers) == run(0)


def test_epochs_and_seeds_change_the_order_but_not_the_set(packs: dict[str, Path]) -> None:
    ds = PackIterableDataset(packs["memmap"], labels_only=True, seed=1)
    first = ds.epoch_order()
    ds.set_epoch(1)
    second = ds.epoch_order()
    assert sorted(first) == sorted(second) == list(range(len(ds.base)))
    assert not np.array_equal(first, second)
    assert PackIterableDataset(
        packs["memmap"], shuffle=False, labels_only=True
    ).epoch_order().tolist() == list(range(len(ds.base)))


def test_shuffle_keeps_locality_within_blocks(packs: dict[str, Path]) -> None:
    ds = PackIterableDataset(packs["memmap"], labels_only=True, seed=2, block_size=4)
    order = ds.epoch_order()
    shard = np.asarray(open_pack(packs["memmap"]).index.locations[:, 0])[order]
    assert (np.diff(shard) != 0).sum() == len(set(shard.tolist())) - 1  # each shard read in one go


def test_iterable_resume_mid_epoch_gives_the_same_remainder(packs: dict[str, Path]) -> None:
    path = packs["zip"]

    def loader(ds: PackIterableDataset) -> DataLoader[Any]:
        return DataLoader(
            ds, batch_size=2, num_workers=2, collate_fn=list, multiprocessing_context="fork"
        )

    full = [
        zlib.crc32(x[0])
        for b in loader(PackIterableDataset(path, decode="bytes", seed=4, batch_size=2))
        for x in b
    ]
    first = PackIterableDataset(path, decode="bytes", seed=4, batch_size=2)
    consumed = 0
    for batch in loader(first):
        consumed += len(batch)
        if consumed >= 6:
            break
    state = first.state_dict(consumed=consumed)
    resumed = PackIterableDataset(path, decode="bytes", seed=999, batch_size=2)
    resumed.load_state_dict(state)
    rest = [zlib.crc32(x[0]) for b in loader(resumed) for x in b]
    assert full[consumed:] == rest


def test_iterable_state_dict_without_workers_counts_itself(packs: dict[str, Path]) -> None:
    ds = PackIterableDataset(packs["hdf5"], labels_only=True, seed=7)
    it = iter(ds)
    head = [next(it) for _ in range(5)]
    state = ds.state_dict()
    again = PackIterableDataset(packs["hdf5"], labels_only=True)
    again.load_state_dict(state)
    assert head + list(again) == list(PackIterableDataset(packs["hdf5"], labels_only=True, seed=7))


def test_sampler_equal_counts_and_resume(packs: dict[str, Path]) -> None:
    ds = PackDataset(packs["lmdb"], labels_only=True)
    samplers = [PackSampler(ds, seed=3, rank=r, world_size=4) for r in range(4)]
    orders = [list(s) for s in samplers]
    assert len({len(o) for o in orders}) == 1
    assert set().union(*map(set, orders)) == set(range(len(ds)))
    s = samplers[1]
    state = s.state_dict(consumed=3)
    fresh = PackSampler(ds, rank=1, world_size=4)
    fresh.load_state_dict(state)
    assert list(fresh) == orders[1][3:] and len(fresh) == len(orders[1]) - 3
    loader = DataLoader(
        ds, batch_size=None, sampler=PackSampler(ds, rank=0, world_size=1, shuffle=False)
    )
    assert list(loader) == ds.labels.tolist()


def test_label_only_mode_never_touches_data_files(packs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "labels-only.pack"
    shutil.copytree(packs["tar"], copy)
    expected = open_pack(copy).labels.tolist()
    for data_file in copy.glob("shard-*"):
        data_file.unlink()
    assert [PackDataset(copy, labels_only=True)[i] for i in range(len(expected))] == expected
    assert (
        list(
            DataLoader(
                PackIterableDataset(copy, labels_only=True, shuffle=False),
                batch_size=None,
                num_workers=2,
            )
        )
        == expected
    )


def test_decoders(packs: dict[str, Path], source: Path, tmp_path: Path) -> None:
    from PIL import Image

    path = packs["zip"]
    pil, label = PackDataset(path)[0]
    assert isinstance(pil, Image.Image) and pil.mode == "RGB" and label == 0
    arr, _ = PackDataset(path, decode="numpy")[0]
    assert arr.shape == (pil.height, pil.width, 3) and arr.dtype == np.uint8
    tensor, _ = PackDataset(path, decode="tensor")[0]
    assert tensor.shape == (3, pil.height, pil.width) and tensor.dtype == torch.uint8
    assert arr.flags.writeable
    assert torch.equal(tensor, torch.from_numpy(arr).permute(2, 0, 1))
    small, _ = PackDataset(path, decode="tensor", size=(8, 12))[0]
    assert small.shape == (3, 8, 12)
    from packer.images.transforms import Transform

    pixels = convert(
        source, tmp_path / "px", "memmap", transform=Transform(size=(6, 5), mode="RGB")
    ).path
    t, _ = PackDataset(pixels, decode="tensor")[3]
    assert t.shape == (3, 6, 5) and torch.equal(
        t, torch.from_numpy(open_pack(pixels).array(3).copy()).permute(2, 0, 1)
    )
    assert PackDataset(pixels, decode="pil")[3][0].size == (5, 6)


def test_dataset_matches_imagefolder_order_and_targets(
    packs: dict[str, Path], source: Path
) -> None:
    from packer.testing import imagefolder_order

    classes, expected = imagefolder_order(source)
    ds = PackDataset(packs["tar"], decode="bytes")
    assert ds.classes == classes
    assert [(zlib.crc32(x), y) for x, y in (ds[i] for i in range(len(ds)))] == [
        (zlib.crc32((source / rel).read_bytes()), label) for rel, label in expected
    ]


def _fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def test_no_fd_leak_or_memory_growth_across_epochs(packs: dict[str, Path]) -> None:
    path = packs["lmdb"]
    ds = PackIterableDataset(path, decode="bytes")
    loader = DataLoader(
        ds, batch_size=None, num_workers=2, persistent_workers=True, multiprocessing_context="fork"
    )

    def epoch(e: int) -> None:
        ds.set_epoch(e)
        assert len(list(loader)) == len(ds)
        for _ in range(3):  # and datasets/packs made and dropped in this process
            inner = PackDataset(path, decode="bytes")
            [inner[i] for i in range(len(inner))]
            open_pack(path).close()

    for e in range(2):  # warm up: imports, worker start, first maps
        epoch(e)
    fds, rss = _fds(), _rss_mb()
    for e in range(2, 12):
        epoch(e)
    assert _fds() <= fds
    assert _rss_mb() - rss < 20


def test_the_iterable_dataset_takes_every_option_of_the_map_style_one() -> None:
    """SampleOptions is declared once and passed on: it must name PackDataset's parameters."""
    import inspect
    import typing

    from packer.pytorch import SampleOptions

    params = list(inspect.signature(PackDataset.__init__).parameters)[2:]  # not self, path
    assert set(typing.get_type_hints(SampleOptions)) == set(params)
