"""The visiting-order maths, without torch: what every distributed run depends on."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from packer.read.ordering import epoch_permutation, shard_block_order, split_for_rank, worker_share


@settings(max_examples=200, deadline=None)
@given(total=st.integers(0, 60), world=st.integers(1, 8), drop_last=st.booleans())
def test_every_rank_gets_the_same_count_and_nothing_is_lost(
    total: int, world: int, drop_last: bool
) -> None:
    order = np.arange(total) * 10
    parts = [split_for_rank(order, r, world, drop_last) for r in range(world)]
    sizes = {len(p) for p in parts}
    assert len(sizes) == 1  # no rank waits for another at the end of an epoch
    size = sizes.pop()
    if drop_last:
        assert size == total // world
        assert np.array_equal(np.concatenate(parts), order[: size * world])
    else:
        assert (size * world >= total and (size - 1) * world < total) or total == 0
        seen = np.concatenate(parts)
        assert np.array_equal(seen[:total], order)  # contiguous chunks, in order
        assert set(seen.tolist()) == set(order.tolist())  # padding only repeats samples


@given(length=st.integers(0, 50), seed=st.integers(0, 5), epoch=st.integers(0, 5))
def test_epoch_permutation_is_a_seeded_permutation(length: int, seed: int, epoch: int) -> None:
    first = epoch_permutation(length, True, seed, epoch)
    assert sorted(first.tolist()) == list(range(length))
    assert np.array_equal(first, epoch_permutation(length, True, seed, epoch))
    assert np.array_equal(epoch_permutation(length, False, seed, epoch), np.arange(length))


def test_epochs_differ() -> None:
    assert not np.array_equal(
        epoch_permutation(100, True, 0, 0), epoch_permutation(100, True, 0, 1)
    )


@settings(max_examples=100, deadline=None)
@given(
    shard_sizes=st.lists(st.integers(1, 20), min_size=1, max_size=6),
    block=st.integers(1, 8),
    seed=st.integers(0, 3),
)
def test_shard_blocks_are_a_permutation_that_keeps_locality(
    shard_sizes: list[int], block: int, seed: int
) -> None:
    shard_of = np.repeat(np.arange(len(shard_sizes)), shard_sizes)
    n = len(shard_of)
    storage = np.arange(n)
    order = shard_block_order(shard_of, storage, seed, 0, block)
    assert sorted(order.tolist()) == list(range(n))
    # each shard is visited in one run: consecutive positions never go back to a finished shard
    runs = [
        int(shard_of[p])
        for i, p in enumerate(order.tolist())
        if i == 0 or shard_of[p] != shard_of[order[i - 1]]
    ]
    assert len(runs) == len(set(runs)) == len(shard_sizes)
    # within a shard, each block of `block` stored samples is visited contiguously
    starts = np.r_[0, np.cumsum(shard_sizes)[:-1]]
    block_of = np.array([(p - starts[shard_of[p]]) // block for p in range(n)])
    keys = [(int(shard_of[p]), int(block_of[p])) for p in order.tolist()]
    changes = [k for i, k in enumerate(keys) if i == 0 or k != keys[i - 1]]
    assert len(changes) == len(set(changes))


@settings(max_examples=100, deadline=None)
@given(total=st.integers(0, 40), batch=st.integers(1, 6), workers=st.integers(1, 5))
def test_workers_deliver_the_rank_order_batch_by_batch(
    total: int, batch: int, workers: int
) -> None:
    order = np.arange(total) + 100
    shares = [worker_share(order, batch, w, workers).tolist() for w in range(workers)]
    # the DataLoader takes one batch from each worker in turn
    delivered: list[int] = []
    cursors = [0] * workers
    for _ in range(total + 1):  # enough rounds; a share that is too short fails the assert
        for w in range(workers):
            delivered += shares[w][cursors[w] : cursors[w] + batch]
            cursors[w] += batch
    assert delivered == order.tolist()
