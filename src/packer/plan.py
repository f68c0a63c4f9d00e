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

import contextlib
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
_STAT_BLOCK = 65536
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
    :func:`cut_points`) are needed for content cuts, ``sizes`` for a byte limit.

    The same cuts as applying :meth:`CutRule.full` before and :meth:`CutRule.ends` after each
    sample in turn (what the writer does while reading), found a shard at a time by bisection
    over cumulative sums: a million samples plan in milliseconds, not a Python loop each."""
    most, limit = rule.max_samples, rule.max_bytes
    if (limit is None and most is None) or n == 0:
        return [(0, n)]
    if rule.content and points is None:
        raise ValueError("content-defined cuts need the cut points")
    size = np.zeros(n, np.int64) if sizes is None else np.asarray(sizes, np.int64)[:n]
    cum = np.concatenate([[0], np.cumsum(size)])
    candidates = np.zeros(0, np.int64)
    if rule.content and points is not None and n > 1:
        u = np.asarray(points, np.float64)[: n - 1]  # no cut after the last sample
        hit = np.zeros(n - 1, dtype=bool)
        if most is not None:
            hit |= u * most < _RATE
        if limit is not None:
            hit |= u * limit < _RATE * size[: n - 1].astype(np.float64)
        candidates = np.flatnonzero(hit)
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < n:
        # forced: the first sample i > start that would overflow the shard starts the next one
        full = n
        if most is not None:
            full = min(full, start + most)
        if limit is not None:
            over = int(np.searchsorted(cum, cum[start] + limit, side="right")) - 1
            full = min(full, max(over, start + 1))
        # content: the first candidate once the shard is a third full, if before that
        floor = n
        if most is not None:
            floor = min(floor, start + -(-most // _FLOOR) - 1)
        if limit is not None:
            floor = min(floor, int(np.searchsorted(cum, cum[start] + -(-limit // _FLOOR))) - 1)
        stop = min(full, n)
        at = int(np.searchsorted(candidates, max(floor, start)))
        if at < len(candidates) and candidates[at] < full:
            stop = int(candidates[at]) + 1
        bounds.append((start, stop))
        start = stop
    return bounds


def file_stats(root: Path, paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """int64 (size, mtime_ns) of each file under ``root`` (0, 0 where it cannot be stat'ed).
    Each folder is opened once and its files stat'ed by name in it: a shorter lookup per file
    than a path from ``root`` (on network filesystems, fewer round trips). Values gather in
    lists a block of paths at a time (cheaper than a numpy store per file, memory still flat)."""
    sizes = np.zeros(len(paths), dtype=np.int64)
    mtimes = np.zeros(len(paths), dtype=np.int64)
    stat, folder, fd = os.stat, None, -1
    prefix = os.fspath(root) + os.sep
    by_folder = os.stat in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")
    try:
        for a in range(0, len(paths), _STAT_BLOCK):
            got_size: list[int] = []
            got_mtime: list[int] = []
            for rel in paths[a : a + _STAT_BLOCK]:
                parent, _, name = rel.rpartition("/")
                if by_folder and parent != folder:
                    if fd >= 0:
                        os.close(fd)
                    folder, fd = parent, -1
                    with contextlib.suppress(OSError):
                        fd = os.open(prefix + parent, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    st = stat(name, dir_fd=fd) if fd >= 0 else stat(prefix + rel)
                except OSError:
                    got_size.append(0)
                    got_mtime.append(0)
                    continue
                got_size.append(st.st_size)
                got_mtime.append(st.st_mtime_ns)
            sizes[a : a + len(got_size)] = got_size
            mtimes[a : a + len(got_mtime)] = got_mtime
    finally:
        if fd >= 0:
            os.close(fd)
    return sizes, mtimes


def stat_size(path: str) -> int:
    """A file's size for the shard cut rule; 0 if it cannot be stat'ed (the read then reports the
    real error). The up-front plan and the writer's cut-while-reading both count with this."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
