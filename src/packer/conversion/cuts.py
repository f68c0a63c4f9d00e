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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from packer._util.columns import Array
    from packer._util.pathtable import PathTable

DEFAULT_SHARD_SIZE = 1 << 30  # 1 GiB: few files, each far below any filesystem's limits
#: Without limits given, a mid-size tree is still cut into about this many shards or more (of at
#: most MIN_DEFAULT_SHARD_SAMPLES samples or more), so that parallel workers have work to share.
DEFAULT_MIN_SHARDS = 16
MIN_DEFAULT_SHARD_SAMPLES = 4096
#: ... and never more than this many: a shard's index rows are held while it is written (about
#: 100 B a sample, 6.5 MB here), so above ~700k samples a bigger tree means more shards, not more
#: memory per writer.
MAX_DEFAULT_SHARD_SAMPLES = 1 << 16
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
    of about half of it number at least DEFAULT_MIN_SHARDS, and at most
    MAX_DEFAULT_SHARD_SAMPLES."""
    most = 3 * n // (2 * DEFAULT_MIN_SHARDS)
    power = 1 << max(0, most.bit_length() - 1)
    return min(MAX_DEFAULT_SHARD_SAMPLES, max(MIN_DEFAULT_SHARD_SAMPLES, power))


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
    sizes: Array | None, n: int, rule: CutRule, points: Array | None = None, block: int = 1 << 16
) -> list[tuple[int, int]]:
    """Cut samples ``0..n`` into contiguous ``(start, stop)`` shards by ``rule``; ``points`` (from
    :func:`cut_points`) are needed for content cuts, ``sizes`` for a byte limit.

    The same cuts as applying :meth:`CutRule.full` before and :meth:`CutRule.ends` after each
    sample in turn (what the writer does while reading), found a shard at a time by bisection
    over cumulative sums of a window of samples: a million samples plan in milliseconds, not a
    Python loop each, and memory holds one window (``block`` samples, or the largest shard)
    whatever ``n`` is: the sizes and points may be columns on disk."""
    most, limit = rule.max_samples, rule.max_bytes
    if (limit is None and most is None) or n == 0:
        return [(0, n)]
    if rule.content and points is None:
        raise ValueError("content-defined cuts need the cut points")
    window = _Window(sizes, points, n, rule)
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < n:
        stop = window.shard(start)
        while stop is None:
            window.extend(start, block)
            stop = window.shard(start)
        bounds.append((start, stop))
        start = stop
    return bounds


class _Window:
    """Samples ``lo..hi`` of the plan, their cumulative sizes and candidate content cuts."""

    def __init__(self, sizes: Array | None, points: Array | None, n: int, rule: CutRule) -> None:
        self.sizes, self.points, self.n, self.rule = sizes, points, n, rule
        self.lo = self.hi = 0
        self.size = np.zeros(0, np.int64)
        self.cum = np.zeros(1, np.int64)
        self.candidates = np.zeros(0, np.int64)  # absolute sample numbers

    def extend(self, start: int, block: int) -> None:
        """Drop samples before ``start`` and read at least ``block`` more (doubling the window
        when one shard does not fit in it)."""
        hi = min(self.n, self.hi + max(block, self.hi - start))
        more = (
            np.zeros(hi - self.hi, np.int64)
            if self.sizes is None
            else np.asarray(self.sizes[self.hi : hi], np.int64)
        )
        self.size = np.concatenate([self.size[start - self.lo :], more])
        self.cum = np.concatenate([[0], np.cumsum(self.size)])
        rule = self.rule
        if rule.content and self.points is not None:
            last = min(hi, self.n - 1)  # no cut after the last sample
            u = np.asarray(self.points[self.hi : last], np.float64)
            size = more[: len(u)].astype(np.float64)
            hit = np.zeros(len(u), dtype=bool)
            if rule.max_samples is not None:
                hit |= u * rule.max_samples < _RATE
            if rule.max_bytes is not None:
                hit |= u * rule.max_bytes < _RATE * size
            kept = self.candidates[self.candidates >= start]
            self.candidates = np.concatenate([kept, self.hi + np.flatnonzero(hit)])
        self.lo, self.hi = start, hi

    def shard(self, start: int) -> int | None:
        """Where the shard starting at ``start`` stops, or None if the window is too short."""
        if start >= self.hi:
            return None
        most, limit = self.rule.max_samples, self.rule.max_bytes
        whole = self.hi == self.n  # nothing lies beyond the window
        cum, s, top = self.cum, start - self.lo, len(self.cum) - 1
        # forced: the first sample i > start that would overflow the shard starts the next one
        full = self.n
        if most is not None:
            full = min(full, start + most)
        if limit is not None:
            over = int(np.searchsorted(cum, cum[s] + limit, side="right")) - 1
            if over < top or whole:
                full = min(full, max(self.lo + over, start + 1))
            elif full > self.hi:
                full = -1  # beyond the window: not known yet
        # content: the first candidate once the shard is a third full, if before that
        floor = self.n
        if most is not None:
            floor = min(floor, start + -(-most // _FLOOR) - 1)
        if limit is not None:
            reached = int(np.searchsorted(cum, cum[s] + -(-limit // _FLOOR)))
            floor = min(floor, self.lo + reached - 1 if reached <= top or whole else self.n)
        at = int(np.searchsorted(self.candidates, max(floor, start)))
        if at < len(self.candidates) and (full < 0 or self.candidates[at] < full):
            return int(self.candidates[at]) + 1
        if full < 0 or (full > self.hi and not whole):
            return None
        return min(full, self.n)


def file_stats(root: Path, paths: PathTable) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """int64 (size, mtime_ns) of each file under ``root`` (0, 0 where it cannot be stat'ed), a
    block of paths at a time. Each folder is opened once and its files stat'ed by name in it: a
    shorter lookup per file than a path from ``root`` (on network filesystems, fewer round
    trips). Values gather in lists a block at a time (cheaper than a numpy store per file)."""
    stat, folder, fd = os.stat, None, -1
    prefix = os.fspath(root) + os.sep
    by_folder = os.stat in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")
    try:
        for block in paths.blocks(_STAT_BLOCK):
            got_size: list[int] = []
            got_mtime: list[int] = []
            for rel in block:
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
            yield np.array(got_size, dtype=np.int64), np.array(got_mtime, dtype=np.int64)
    finally:
        if fd >= 0:
            os.close(fd)


def stat_size(path: str) -> int:
    """A file's size for the shard cut rule; 0 if it cannot be stat'ed (the read then reports the
    real error). The up-front plan and the writer's cut-while-reading both count with this."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
