"""Shard boundaries: a pure function of the ordered file list, the file sizes and the limits.

The same rule cuts shards up front (workers need their boundaries before they start) and while
reading (one process, no stat pass over the tree), so both give identical packs.

Content-defined cuts (the default): a shard may end after a sample whose path hash falls below a
threshold proportional to the sample's share of the limit, once the shard is half full, and must
end before a sample that would take it over a limit. Whether a sample ends a shard depends on that
sample alone, so inserting or removing a file moves the boundaries of about one shard, not of every
later one (``pack convert --update`` then rewrites about two data files). Shards average about two
thirds of the limit. ``cut="fixed"`` fills every shard to the limit instead (the old greedy rule).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_SHARD_SIZE = 1 << 30  # 1 GiB: few files, each far below any filesystem's limits
#: Without limits given, a mid-size tree is still cut into about this many shards or more (of at
#: most MIN_DEFAULT_SHARD_SAMPLES samples or more), so that parallel workers have work to share.
DEFAULT_MIN_SHARDS = 16
MIN_DEFAULT_SHARD_SAMPLES = 4096
CUT_MODES = ("content", "fixed")
#: A content cut needs the shard at least 1/_FLOOR full, and candidate cut points come every
#: 1/_RATE of the limit on average: shards average about half the limit and few are cut by it.
#: Measured on 20k files (tests/test_sharding.py): (2, 6) fills ~0.63 but cascades past two shards
#: in up to 4% of insertions; (3, 5) fills ~0.5 and cascades in at most ~2.5%.
_FLOOR = 3
_RATE = 5.0


def default_samples_per_shard(n: int) -> int:
    """The sample cap used when neither ``--shard-size`` nor ``--samples-per-shard`` is given: a
    power of two from the number of samples only (so the output never depends on the workers, and
    adding files changes it only when the count crosses a power of two), small enough that shards
    of about half of it number at least DEFAULT_MIN_SHARDS."""
    most = 3 * n // (2 * DEFAULT_MIN_SHARDS)
    return max(MIN_DEFAULT_SHARD_SAMPLES, 1 << max(0, most.bit_length() - 1))


@dataclass(frozen=True)
class CutRule:
    """Where shards end: at most ``max_bytes`` source bytes and ``max_samples`` samples each (a
    single sample larger than the byte limit gets a shard of its own); with ``content``, earlier at
    content-defined points (see the module docstring)."""

    max_bytes: int | None
    max_samples: int | None
    content: bool = True

    def full(self, count: int, nbytes: int, size: int) -> bool:
        """Must a shard of ``count`` samples and ``nbytes`` bytes end before a sample of ``size``?"""
        return count > 0 and (
            (self.max_samples is not None and count >= self.max_samples)
            or (self.max_bytes is not None and nbytes + size > self.max_bytes)
        )

    def ends(self, count: int, nbytes: int, size: int, u: float) -> bool:
        """Does the shard end after its last sample (of ``size`` bytes, path hash ``u`` in [0, 1)),
        now that it holds ``count`` samples and ``nbytes`` bytes?"""
        if not self.content:
            return False
        most, limit = self.max_samples, self.max_bytes
        filled = (most is not None and _FLOOR * count >= most) or (
            limit is not None and _FLOOR * nbytes >= limit
        )
        return filled and (
            (most is not None and u * most < _RATE)
            or (limit is not None and u * limit < _RATE * size)
        )


def cut_points(hashes: np.ndarray) -> np.ndarray:
    """Each path hash as a float in [0, 1) (53 bits: exact, the same on every machine)."""
    return (np.asarray(hashes, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def plan_shards(
    sizes: np.ndarray | None, n: int, rule: CutRule, points: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """Cut samples ``0..n`` into contiguous ``(start, stop)`` shards by ``rule``; ``points`` (from
    :func:`cut_points`) are needed for content cuts, ``sizes`` for a byte limit."""
    if rule.max_bytes is None and rule.max_samples is None:
        return [(0, n)]
    if rule.content and points is None:
        raise ValueError("content-defined cuts need the cut points")
    bounds: list[tuple[int, int]] = []
    start, nbytes = 0, 0
    size_list = sizes.tolist() if sizes is not None else [0] * n
    point_list = points.tolist() if points is not None else [1.0] * n
    for i in range(n):
        size = size_list[i]
        if rule.full(i - start, nbytes, size):
            bounds.append((start, i))
            start, nbytes = i, 0
        nbytes += size
        if i + 1 < n and rule.ends(i + 1 - start, nbytes, size, point_list[i]):
            bounds.append((start, i + 1))
            start, nbytes = i + 1, 0
    bounds.append((start, n))
    return bounds


def file_sizes(root: Path, paths: Sequence[str]) -> np.ndarray:
    """int64 size of each file under ``root``, for :func:`plan_shards`."""
    return file_stats(root, paths)[0]


def file_stats(root: Path, paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """int64 (size, mtime_ns) of each file under ``root`` (0, 0 where it cannot be stat'ed)."""
    prefix = os.fspath(root) + os.sep
    sizes = np.zeros(len(paths), dtype=np.int64)
    mtimes = np.zeros(len(paths), dtype=np.int64)
    stat = os.stat
    for i, rel in enumerate(paths):
        try:
            st = stat(prefix + rel)
        except OSError:
            continue
        sizes[i] = st.st_size
        mtimes[i] = st.st_mtime_ns
    return sizes, mtimes


def stat_size(path: str) -> int:
    """A file's size for the shard cut rule; 0 if it cannot be stat'ed (the read then reports the
    real error). The up-front plan and the writer's cut-while-reading both count with this."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
