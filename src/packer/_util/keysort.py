"""Sample ids in key order, for an index of any size in bounded memory (an external merge sort).

Keys are compared as bytes (memcmp), the order ``key_order.npy`` records for bisection. Each key is
laid out as a fixed-width record: the key zero-padded to the longest key's width (keys never
contain NUL, so padding sorts a prefix first), then its sample id as 8 big-endian bytes. Records
are unique and sort in (key, id) order, so equal keys keep sample order (a stable sort) and runs
can be merged without ties to break. numpy sorts ``S`` records by memcmp in C.

Runs of up to :data:`RUN_BYTES` of records are sorted in memory and spilled to disk; the runs are
then merged a window at a time: every run contributes what is at most the smallest of the runs'
buffered maxima, so what is emitted is final. Memory is about ``2 * RUN_BYTES`` whatever the
number of keys; a tree that fits in one run never touches the disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from packer.errors import UsageError

#: bytes of records sorted in memory at a time (and about the merge's working set)
RUN_BYTES = 4 << 20
_SCATTER = 8192  # keys laid out at a time (an int64 per key byte while scattering)


def key_order(
    keys: Callable[[int, int], bytes],
    offsets: Callable[[int, int], np.ndarray],
    count: int,
    width: int,
    spill: Path,
    write: Callable[[np.ndarray], object],
    *,
    unique: bool = False,
) -> None:
    """Pass the ids of ``count`` samples in key order to ``write`` (uint64 arrays, in order).

    ``offsets(a, b)`` gives key offsets ``a..b`` inclusive (``b - a + 1`` values) and ``keys(x, y)``
    the key bytes between two offsets; ``width`` is the longest key's length. Runs are spilled
    as files in the folder ``spill`` (created, and removed again). With ``unique``, a key given
    to two samples is a UsageError naming it.
    """
    record = max(1, width) + 8
    per_run = max(1, RUN_BYTES // record)
    runs = [(a, min(count, a + per_run)) for a in range(0, count, per_run)]
    check = _Duplicates(record - 8) if unique else None
    if len(runs) <= 1:
        for a, b in runs:
            _emit(_sorted_run(keys, offsets, a, b, record), record, write, check)
        return
    spill.mkdir(parents=True, exist_ok=True)
    try:
        files = []
        for r, (a, b) in enumerate(runs):
            path = spill / f"run{r:05d}"
            _sorted_run(keys, offsets, a, b, record).tofile(path)
            files.append(path)
        for merged in _merge(files, record, max(16, per_run // len(files))):
            _emit(merged, record, write, check)
    finally:
        for path in spill.glob("run*"):
            path.unlink()
        spill.rmdir()


def _sorted_run(
    keys: Callable[[int, int], bytes],
    offsets: Callable[[int, int], np.ndarray],
    a: int,
    b: int,
    record: int,
) -> np.ndarray:
    """The fixed-width records of samples ``a..b`` (see the module docstring), sorted."""
    width = record - 8
    rows = np.zeros((b - a, record), dtype=np.uint8)
    rows[:, width:] = np.arange(a, b, dtype=">u8").view(np.uint8).reshape(-1, 8)
    for s in range(a, b, _SCATTER):
        e = min(b, s + _SCATTER)
        offs = offsets(s, e).astype(np.int64)
        blob = np.frombuffer(keys(int(offs[0]), int(offs[-1])), dtype=np.uint8)
        lens = np.diff(offs)
        starts = offs[:-1] - offs[0]
        # where each key byte goes in the flat rows: its row's start plus its place in the key
        dest = np.repeat((np.arange(s, e) - a) * record - starts, lens) + np.arange(len(blob))
        rows.reshape(-1)[dest] = blob
    records = rows.view(f"S{record}").reshape(-1)
    records.sort()
    return records


def _merge(files: list[Path], record: int, window: int) -> Iterator[np.ndarray]:
    """Merge sorted run files, yielding sorted blocks in order."""
    dtype = np.dtype(f"S{record}")
    sizes = [path.stat().st_size // record for path in files]
    read = [0] * len(files)
    buffers = [np.zeros(0, dtype=dtype) for _ in files]

    def refill(r: int) -> None:
        if len(buffers[r]) < window // 2 and read[r] < sizes[r]:
            more = np.fromfile(
                files[r],
                dtype=dtype,
                count=min(window, sizes[r] - read[r]),
                offset=read[r] * record,
            )
            read[r] += len(more)
            buffers[r] = np.concatenate([buffers[r], more]) if len(buffers[r]) else more

    for r in range(len(files)):
        refill(r)
    while any(len(b) for b in buffers):
        pending = [buffers[r][-1] for r in range(len(files)) if read[r] < sizes[r]]
        bound = min(pending) if pending else None
        taken = []
        for r, buf in enumerate(buffers):
            cut = len(buf) if bound is None else int(np.searchsorted(buf, bound, side="right"))
            if cut:
                taken.append(buf[:cut])
                buffers[r] = buf[cut:]
            refill(r)
        block = np.concatenate(taken)
        block.sort()
        yield block


class _Duplicates:
    """Finds a key given twice across the merged blocks (the last key of one block is kept)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.last: bytes | None = None

    def __call__(self, rows: np.ndarray) -> None:
        keys = np.ascontiguousarray(rows[:, : self.width]).view(f"S{self.width}").reshape(-1)
        first = np.flatnonzero(keys[1:] == keys[:-1])
        if len(first):
            self._raise(bytes(keys[first[0]]))
        if self.last is not None and len(keys) and bytes(keys[0]) == self.last:
            self._raise(self.last)
        if len(keys):
            self.last = bytes(keys[-1])

    @staticmethod
    def _raise(padded: bytes) -> None:
        key = padded.rstrip(b"\0").decode("utf-8", "surrogateescape")
        raise UsageError(f"key {key!r} is given to two samples; keys must be unique")


def _emit(
    records: np.ndarray,
    record: int,
    write: Callable[[np.ndarray], object],
    check: _Duplicates | None,
) -> None:
    rows = records.view(np.uint8).reshape(-1, record)
    if check is not None:
        check(rows)
    write(rows[:, record - 8 :].copy().view(">u8").reshape(-1).astype("<u8"))
