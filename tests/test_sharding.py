"""Shard cutting: by bytes while reading (one process) equals the up-front plan (workers)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packer import convert, open_pack
from packer._util.columns import store
from packer._util.pathtable import PathTable
from packer._util.sizes import parse_bytes
from packer.conversion.cuts import (
    DEFAULT_SHARD_SIZE,
    CutRule,
    cut_points,
    default_samples_per_shard,
    plan_shards,
)
from packer.demo import make_demo_tree
from packer.errors import UsageError
from packer.run.pools import available_cpus, default_workers
from packer.testing import tree_digest


@pytest.mark.parametrize(
    ("shard_size", "per_shard"), [("20KB", None), ("9KB", 7), (None, 11), ("1B", None)]
)
def test_one_process_and_workers_cut_the_same_shards(
    tmp_path: Path, shard_size: str | None, per_shard: int | None
) -> None:
    tree = make_demo_tree(tmp_path / "src", per_class=15, size=24)
    (tree / "square" / "broken.jpg").write_bytes(
        b"\xff\xd8\xff" + b"x" * 5000
    )  # skipped, still counted
    kwargs = {"shard_size": shard_size, "samples_per_shard": per_shard, "on_error": "skip"}
    one = convert(tree, tmp_path / "one.pack", "tar", **kwargs)  # type: ignore[arg-type]
    two = convert(tree, tmp_path / "two.pack", "tar", workers=2, **kwargs)  # type: ignore[arg-type]
    assert tree_digest(one.path) == tree_digest(two.path)
    assert one.data_files > 1 and len(one.skipped) == 1
    with open_pack(one.path) as pack:
        limit = parse_bytes(shard_size) if shard_size else None
        loc = pack.index.locations
        for file_id, f in enumerate(pack.manifest.data_files):
            assert per_shard is None or f.num_samples <= per_shard
            payload = int(loc[loc[:, 0] == file_id, 2].sum())
            assert limit is None or f.num_samples == 1 or payload <= limit


def _points(n: int, seed: int = 0) -> np.ndarray:
    paths = PathTable.from_strings([f"c{seed}/{i:07d}.jpg" for i in range(n)])
    return cut_points(paths.hashes())


def test_default_sample_cap_stops_growing_with_the_tree() -> None:
    """A shard's rows are held while it is written: past ~700k samples the cap stays put."""
    caps = [default_samples_per_shard(n) for n in (10**5, 7 * 10**5, 10**6, 10**7, 10**9)]
    assert caps == [8192, 65536, 65536, 65536, 65536]


@pytest.mark.parametrize("n", [1, 4096, 60_000, 65_537, 10**6])
def test_default_cut_gives_mid_size_trees_shards_to_share(n: int) -> None:
    per_shard = default_samples_per_shard(n)
    assert per_shard >= 4096 and per_shard & (per_shard - 1) == 0  # a power of two
    # tiny files: the 1 GiB default never cuts, the sample cap does, the same for any workers
    rule = CutRule(DEFAULT_SHARD_SIZE, per_shard)
    bounds = plan_shards(np.full(n, 100), n, rule, _points(n))
    assert all(b - a <= per_shard for a, b in bounds)
    if n >= 60_000:
        assert len(bounds) >= 12  # about 16 or more: two workers always have work to share
    if n <= 4096 // 3:
        assert len(bounds) == 1  # a content cut needs a shard a third full


def test_a_default_convert_is_cut_by_the_sample_cap(tmp_path: Path) -> None:
    tree = make_demo_tree(tmp_path / "src", per_class=1100, size=8)  # 4400 samples
    report = convert(tree, tmp_path / "out.pack", "memmap", workers=1)
    assert report.data_files >= 2
    with open_pack(report.path) as pack:
        assert pack.manifest.created_by["samples_per_shard"] == 4096
        assert pack.manifest.created_by["cut"] == "content"
        counts = [f.num_samples for f in pack.manifest.data_files]
        assert sum(counts) == 4400 and max(counts) <= 4096 and 3 * min(counts[:-1]) >= 4096


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 100), min_size=1, max_size=40),
    limit=st.one_of(st.none(), st.integers(1, 300)),
    count=st.one_of(st.none(), st.integers(1, 10)),
    content=st.booleans(),
    seed=st.integers(0, 1000),
    block=st.sampled_from([1, 3, 1 << 16]),
)
def test_plan_rule(
    sizes: list[int], limit: int | None, count: int | None, content: bool, seed: int, block: int
) -> None:
    arr = np.asarray(sizes)
    points = _points(len(sizes), seed)
    rule = CutRule(limit, count, content=content)
    bounds = plan_shards(arr, len(sizes), rule, points, block=block)
    assert bounds == _sequential(sizes, rule, points.tolist())
    assert bounds[0][0] == 0 and bounds[-1][1] == len(sizes)
    assert all(a < b for a, b in bounds) and all(
        b == c for (_, b), (c, _) in itertools.pairwise(bounds)
    )
    for a, b in bounds:
        assert count is None or b - a <= count
        assert limit is None or b - a == 1 or arr[a:b].sum() <= limit
    for a, b in bounds[:-1]:  # a shard ends when the next sample does not fit, or at a content cut
        over_count = count is not None and b + 1 - a > count
        over_bytes = limit is not None and arr[a : b + 1].sum() > limit
        by_content = content and rule.ends(
            b - a, int(arr[a:b].sum()), int(arr[b - 1]), points[b - 1]
        )
        assert over_count or over_bytes or by_content, (a, b)
        if by_content:  # never before the shard is a third full
            assert (count is not None and 3 * (b - a) >= count) or (
                limit is not None and 3 * arr[a:b].sum() >= limit
            )
    if limit is None and count is None:
        assert bounds == [(0, len(sizes))]


@pytest.mark.parametrize("kind", ["bytes", "count"])
def test_an_insertion_or_removal_moves_about_one_boundary(kind: str) -> None:
    """Content-defined cuts: a file added or removed changes about one shard (measured here: mean
    ~1.1, more than 2 in 2.5% of changes for both kinds; a cascade needs the change to land where
    a shard was cut at a third full, or to fill one to its limit). The fixed rule shifts every
    later shard."""
    n = 20_000
    rng = np.random.default_rng(7)
    sizes = rng.integers(1_000, 200_000, n) if kind == "bytes" else np.full(n, 2_000)
    names = [f"cls/{i:06d}.jpg" for i in range(n)]
    rule = CutRule(20_000_000, 256) if kind == "bytes" else CutRule(1 << 30, 256)
    fixed = CutRule(rule.max_bytes, rule.max_samples, content=False)
    old, old_fixed = _shards(names, sizes, rule), _shards(names, sizes, fixed)
    assert len(old) > 16
    changed, changed_fixed = [], []
    for trial in range(120):
        at = int(rng.integers(0, n))
        if trial % 2:
            new_names, new_sizes = names[:at] + names[at + 1 :], np.delete(sizes, at)
        else:
            new_names = [*names[:at], f"cls/{at:06d}a.jpg", *names[at:]]
            new_sizes = np.insert(sizes, at, int(sizes[at]))
        changed.append(len(_shards(new_names, new_sizes, rule) - old))
        changed_fixed.append(len(_shards(new_names, new_sizes, fixed) - old_fixed))
    counts = np.array(changed)
    assert counts.min() >= 1 and counts.mean() < 1.3 and (counts > 2).mean() <= 0.04, counts
    assert np.mean(changed_fixed) > 10 * counts.mean()  # the greedy rule: every later shard


@pytest.mark.parametrize(
    "rule", [CutRule(5_000_000, 300), CutRule(None, 300), CutRule(2_000_000, None)]
)
@pytest.mark.parametrize("block", [1 << 16, 7, 1000])
def test_the_bisection_plan_is_the_sequential_rule_at_scale(
    rule: CutRule, block: int, tmp_path: Path
) -> None:
    """Whether the window holds every sample or a few (and reads them from columns on disk)."""
    rng = np.random.default_rng(3)
    sizes = rng.integers(0, 100_000, 50_000)
    sizes[rng.integers(0, 50_000, 20)] = 3_000_000  # some bigger than a shard
    points = _points(len(sizes), 5)
    expected = _sequential(sizes.tolist(), rule, points.tolist())
    assert plan_shards(sizes, len(sizes), rule, points, block=block) == expected
    on_disk = (
        store([sizes], "<i8", tmp_path / "sizes.npy"),
        store([points], "<f8", tmp_path / "u.npy"),
    )
    assert plan_shards(on_disk[0], len(sizes), rule, on_disk[1], block=block) == expected


def _sequential(sizes: list[int], rule: CutRule, points: list[float]) -> list[tuple[int, int]]:
    """The rule applied sample by sample, as the writer does while reading."""
    bounds, start, nbytes, n = [], 0, 0, len(sizes)
    for i, size in enumerate(sizes):
        if rule.full(i - start, nbytes, size):
            bounds.append((start, i))
            start, nbytes = i, 0
        nbytes += size
        if i + 1 < n and rule.ends(i + 1 - start, nbytes, size, points[i]):
            bounds.append((start, i + 1))
            start, nbytes = i + 1, 0
    return [*bounds, (start, n)]


def _shards(names: list[str], sizes: np.ndarray, rule: CutRule) -> set[tuple[str, ...]]:
    """Each shard as the tuple of its names: what a data file's content depends on."""
    points = cut_points(PathTable.from_strings(names).hashes())
    return {tuple(names[a:b]) for a, b in plan_shards(sizes, len(names), rule, points)}


def test_path_hashes_are_fixed() -> None:
    """The cut points are part of the pack format: the same names must cut the same everywhere."""
    table = PathTable.from_strings(["a", "b", "ab", "cls/x.jpg", "caf\udce9.jpg", ""])
    assert table.hashes().tolist() == [
        4865425297433116720,
        4135629895810564778,
        630844748721258284,
        16053049552509666002,
        7055803238994331222,
        6238072747940578789,
    ]


def test_path_hashes_do_not_depend_on_how_many_are_hashed_at_once() -> None:
    """Paths are hashed a chunk at a time: a path's hash is the same across chunk boundaries
    (3 x 8192 + 5 paths of varied lengths, some not UTF-8) as in a table of a few paths."""
    odd = "\udce9"  # a byte that is not UTF-8, as os.fsdecode gives it
    names = [
        f"c{i % 7}/{'x' * (i % 23)}{i}{odd if i % 5 == 0 else ''}.jpg" for i in range(3 * 8192 + 5)
    ]
    table = PathTable.from_strings(names)
    small = [table[a : a + 1000].block_hashes() for a in range(0, len(names), 1000)]
    assert table.hashes().tolist() == np.concatenate(small).tolist()
    assert table[8190:8195].hashes().tolist() == table.hashes()[8190:8195].tolist()


@pytest.mark.parametrize("bad", ["", "12XB", "-5", "0", "lots"])
def test_bad_sizes(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_bytes(bad)


def test_sizes() -> None:
    assert (
        parse_bytes("512MB") == 512_000_000
        and parse_bytes("1GiB") == 2**30
        and parse_bytes("4096") == 4096
    )


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_any_executor_gives_the_same_pack(tmp_path: Path, kind: str) -> None:
    """The executor seam: shards written on any concurrent.futures.Executor, same bytes."""
    import concurrent.futures as cf
    import multiprocessing

    tree = make_demo_tree(tmp_path / "src", per_class=12, size=24)
    one = convert(tree, tmp_path / "one.pack", "zip", samples_per_shard=5)
    pool: cf.Executor = (
        cf.ThreadPoolExecutor(3)
        if kind == "thread"
        else cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    )
    with pool:
        other = convert(tree, tmp_path / "other.pack", "zip", samples_per_shard=5, executor=pool)
    assert other.data_files == one.data_files > 1
    assert tree_digest(other.path) == tree_digest(one.path)


def test_a_failing_shard_cancels_the_queued_ones(tmp_path: Path) -> None:
    import concurrent.futures as cf

    from packer.errors import SourceError

    tree = make_demo_tree(tmp_path / "src", per_class=20, size=24)
    (tree / "circle" / "0000.png").write_bytes(b"not an image")  # the first shard fails
    submitted: list[cf.Future[object]] = []

    class Recording(cf.ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            future = super().submit(fn, *args, **kwargs)
            submitted.append(future)
            return future

    with Recording(1) as pool, pytest.raises(SourceError, match="0000.png"):
        convert(tree, tmp_path / "p.pack", "tar", samples_per_shard=4, executor=pool)
    assert len(submitted) > 2 and any(f.cancelled() for f in submitted)
    assert not (tmp_path / "p.pack").exists()


def test_default_workers_follow_the_cpus_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 256)  # the node, not what this job may use
    assert available_cpus() == 6
    assert default_workers(decodes=True) == 6 and default_workers(decodes=False) == 3
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")  # a SLURM allocation wins
    assert default_workers(decodes=True) == 2 and default_workers(decodes=False) == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert default_workers(decodes=False) == 1  # never 0
