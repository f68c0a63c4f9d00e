"""The order samples are visited in, as plain numpy: per epoch, per rank, per DataLoader worker.

Torch-free so that the maths every distributed run depends on is tested without torch; the
samplers and datasets in :mod:`packer.pytorch` only call these.
"""

from __future__ import annotations

import math

import numpy as np


def split_for_rank(order: np.ndarray, rank: int, world_size: int, drop_last: bool) -> np.ndarray:
    """Equal-length contiguous chunk of ``order`` for ``rank`` (padding wraps around, like
    DistributedSampler), so no rank ever waits for another at the end of an epoch."""
    total = len(order)
    if drop_last:
        per_rank = total // world_size
    else:
        per_rank = math.ceil(total / world_size)
        if per_rank * world_size > total and total:
            reps = math.ceil((per_rank * world_size - total) / total)
            order = np.concatenate([order, np.tile(order, reps)[: per_rank * world_size - total]])
    return order[rank * per_rank : (rank + 1) * per_rank]


def epoch_permutation(length: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """``0..length`` in a fresh seeded order per epoch (the same on every rank), or in order."""
    if not shuffle:
        return np.arange(length)
    return np.random.default_rng([seed, epoch]).permutation(length)


def shard_block_order(
    shard_of: np.ndarray, storage_order: np.ndarray, seed: int, epoch: int, block_size: int
) -> np.ndarray:
    """A locality-friendly shuffled order of dataset positions.

    Shards are visited in a seeded random order; within a shard, blocks of ``block_size``
    consecutive samples (in storage order) come in random order, shuffled inside each block.

    Args:
        shard_of: the data-file id of each position, in storage order.
        storage_order: dataset positions sorted by where they are stored.
        seed, epoch: the shuffle's seed (equal on every rank) and the epoch.
        block_size: samples per shuffled block.
    """
    n = len(storage_order)
    rng = np.random.default_rng([seed, epoch])
    starts = np.flatnonzero(np.r_[True, shard_of[1:] != shard_of[:-1]]) if n else np.arange(0)
    bounds = np.r_[starts, n]
    parts = []
    for s in rng.permutation(len(starts)):
        segment = storage_order[bounds[s] : bounds[s + 1]]
        block = np.arange(len(segment)) // block_size
        block_rank = rng.permutation(int(block[-1]) + 1)[block] if len(segment) else block
        parts.append(segment[np.lexsort((rng.random(len(segment)), block_rank))])
    return np.concatenate(parts) if parts else np.arange(0)


def worker_share(order: np.ndarray, batch_size: int, worker: int, workers: int) -> np.ndarray:
    """What DataLoader worker ``worker`` of ``workers`` yields: batches ``worker, worker + workers,
    ...`` of ``order``, so that the DataLoader, which takes one batch from each worker in turn,
    delivers ``order`` unchanged for any number of workers."""
    if workers <= 1:
        return order
    batch = np.arange(len(order)) // batch_size
    share: np.ndarray = order[batch % workers == worker]
    return share
