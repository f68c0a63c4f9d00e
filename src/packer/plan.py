"""Shard boundaries: a pure function of the ordered file list, the file sizes and the limits.

The same greedy rule cuts shards up front (workers need their boundaries before they start) and
while reading (one process, no stat pass over the tree), so both give identical packs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DEFAULT_SHARD_SIZE = 1 << 30  # 1 GiB: few files, each far below any filesystem's limits
#: Without limits given, a mid-size tree is still cut into this many shards (of at least
#: MIN_DEFAULT_SHARD_SAMPLES samples), so that parallel workers have work to share.
DEFAULT_MIN_SHARDS = 16
MIN_DEFAULT_SHARD_SAMPLES = 4096


def default_samples_per_shard(n: int) -> int:
    """The sample cap used when neither ``--shard-size`` nor ``--samples-per-shard`` is given: a
    function of the number of samples only, so the output never depends on the workers."""
    return max(MIN_DEFAULT_SHARD_SAMPLES, -(-n // DEFAULT_MIN_SHARDS))


def plan_shards(
    sizes: np.ndarray | None, n: int, shard_size: int | None, samples_per_shard: int | None
) -> list[tuple[int, int]]:
    """Cut samples ``0..n`` into contiguous ``(start, stop)`` shards, greedily by bytes and count:
    a shard ends before the sample that would take it over ``shard_size`` source bytes or past
    ``samples_per_shard`` samples (a single sample larger than the limit gets a shard of its own)."""
    if sizes is None and samples_per_shard is None:
        return [(0, n)]
    bounds: list[tuple[int, int]] = []
    start, nbytes = 0, 0
    limit_count = samples_per_shard or n
    size_list = sizes.tolist() if sizes is not None else None
    for i in range(n):
        size = size_list[i] if size_list is not None else 0
        full_count = i - start >= limit_count
        full_bytes = shard_size is not None and i > start and nbytes + size > shard_size
        if full_count or full_bytes:
            bounds.append((start, i))
            start, nbytes = i, 0
        nbytes += size
    bounds.append((start, n))
    return bounds


def file_sizes(root: Path, paths: Sequence[str]) -> np.ndarray:
    """int64 size of each file under ``root``, for :func:`plan_shards`."""
    prefix = os.fspath(root) + os.sep
    return np.fromiter((stat_size(prefix + rel) for rel in paths), dtype=np.int64, count=len(paths))


def stat_size(path: str) -> int:
    """A file's size for the shard cut rule; 0 if it cannot be stat'ed (the read then reports the
    real error). The up-front plan and the writer's cut-while-reading both count with this."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
