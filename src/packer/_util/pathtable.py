"""An ordered list of relative paths held as one byte string, for trees of tens of millions of files.

A Python ``list`` of ``str`` costs about 60 bytes of object overhead per path on top of its
characters (1M paths of 25 characters: ~90 MB); here a path costs its UTF-8 length plus 9 bytes
(a NUL terminator and an offset), it pickles as two buffers (cheap to send to a worker), and
decoding a run of paths is one C-level ``decode`` + ``split``. Names that are not UTF-8 round-trip
through ``surrogateescape``; a POSIX file name never contains NUL, so NUL can end each path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import overload

import numpy as np

from packer._util.columns import Array, blocks_of, store

_ENCODING = ("utf-8", "surrogateescape")
_CHUNK = 65536  # paths decoded at a time when iterating
#: Paths hashed at once: the vectorised hash makes ~32 bytes of temporaries per path byte
#: (40 MB for 65536 paths of 18 bytes); smaller chunks are as fast.
_HASH_CHUNK = 8192


class PathTable(Sequence[str]):
    """Immutable sequence of paths. ``offsets[i]`` is where path ``i`` starts in ``blob``; it ends
    one byte (its NUL) before ``offsets[i + 1]``."""

    __slots__ = ("_blob", "_offsets")

    def __init__(self, blob: bytes, offsets: np.ndarray) -> None:
        self._blob = blob
        self._offsets = np.ascontiguousarray(offsets, dtype=np.int64)

    @classmethod
    def from_strings(cls, paths: Iterable[str]) -> PathTable:
        items = list(paths) if not isinstance(paths, list) else paths
        if not items:
            return cls(b"", np.zeros(1, dtype=np.int64))
        return cls.from_blob(("\0".join(items) + "\0").encode(*_ENCODING))

    @classmethod
    def from_blob(cls, blob: bytes) -> PathTable:
        """A table from NUL-terminated paths back to back."""
        ends = np.flatnonzero(np.frombuffer(blob, dtype=np.uint8) == 0) + 1
        return cls(blob, np.concatenate([np.zeros(1, dtype=np.int64), ends]))

    @classmethod
    def concat(cls, parts: Iterable[bytes]) -> PathTable:
        """A table from blobs of NUL-terminated paths, in order."""
        return cls.from_blob(b"".join(parts))

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> PathTable: ...

    def __getitem__(self, index: int | slice) -> str | PathTable:
        if isinstance(index, slice):
            a, b, step = index.indices(len(self))
            if step != 1:
                return PathTable.from_strings([self[i] for i in range(a, b, step)])
            b = max(a, b)
            start, stop = int(self._offsets[a]), int(self._offsets[b])
            return PathTable(self._blob[start:stop], self._offsets[a : b + 1] - start)
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("path index out of range")
        start, stop = int(self._offsets[index]), int(self._offsets[index + 1])
        return self._blob[start : stop - 1].decode(*_ENCODING)

    def __iter__(self) -> Iterator[str]:
        offsets = self._offsets
        for a in range(0, len(self), _CHUNK):
            b = min(len(self), a + _CHUNK)
            yield from (
                self._blob[int(offsets[a]) : int(offsets[b]) - 1].decode(*_ENCODING).split("\0")
            )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PathTable):
            return self._blob == other._blob
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(repr(p) for p in self[:3])
        return f"PathTable([{shown}{', ...' if len(self) > 3 else ''}], n={len(self)})"

    @property
    def nbytes(self) -> int:
        return len(self._blob) + self._offsets.nbytes

    def blocks(self, size: int = _CHUNK) -> Iterator[PathTable]:
        """The table a block of paths at a time (views here; reads for a table on disk)."""
        for a in range(0, len(self), size):
            yield self[a : a + size]

    def hashes(self) -> np.ndarray:
        """A 64-bit hash of each path (uint64), a pure function of its bytes on every machine:
        content-defined shard cuts and matching paths between two scans use it. Vectorised (a
        polynomial over the bytes, then the SplitMix64 finaliser), a block of paths at a time."""
        out = np.empty(len(self), dtype=np.uint64)  # filled in place: no list of parts to join
        start = 0
        for block in self.blocks():
            out[start : start + len(block)] = block.block_hashes()
            start += len(block)
        return out

    def block_hashes(self) -> np.ndarray:
        """:meth:`hashes` of an in-memory table, vectorised over ``_HASH_CHUNK`` paths at once."""
        out = np.empty(len(self), dtype=np.uint64)
        for a in range(0, len(self), _HASH_CHUNK):
            out[a : a + _HASH_CHUNK] = self._hash_range(a, min(len(self), a + _HASH_CHUNK))
        return out

    def _hash_range(self, a: int, b: int) -> np.ndarray:
        offsets = self._offsets[a : b + 1]
        raw = np.frombuffer(self._blob, dtype=np.uint8)
        starts = offsets[:-1] - offsets[0]
        lengths = np.diff(offsets)  # each path's bytes and its NUL
        chunk = raw[offsets[0] : offsets[-1]].astype(np.uint64) + np.uint64(1)
        position = np.arange(len(chunk), dtype=np.int64) - np.repeat(starts, lengths)
        chunk *= _powers(int(lengths.max()))[position]
        out: np.ndarray = _mix(np.add.reduceat(chunk, starts))
        return out

    def extensions(self) -> tuple[list[str], np.ndarray]:
        """The distinct extensions (:func:`packer.format.keys.split_name`'s rule: what follows the last
        dot of the base name, case kept; "" if none), sorted, and each path's position in them
        (uint16). See :func:`extension_ids`."""
        names, ids = extension_ids(self)
        return names, np.asarray(ids)

    def encoded(self) -> tuple[bytes, np.ndarray]:
        """(the paths back to back without terminators, uint64 offsets ``(n+1,)``): the plan's
        on-disk form."""
        raw = np.frombuffer(self._blob, dtype=np.uint8)
        keep = np.ones(len(raw), dtype=bool)
        keep[self._offsets[1:] - 1] = False
        plain = self._offsets - np.arange(len(self._offsets), dtype=np.int64)
        return raw[keep].tobytes(), plain.astype("<u8")

    def encoded_columns(self) -> tuple[Array, Array]:
        """:meth:`encoded` as arrays (uint8 path bytes, offsets): columns on disk for a
        :class:`DiskPaths`, so hashing or saving them reads a block at a time."""
        blob, offsets = self.encoded()
        return np.frombuffer(blob, dtype=np.uint8), offsets

    @classmethod
    def from_encoded(cls, blob: bytes, offsets: np.ndarray) -> PathTable:
        """The inverse of :meth:`encoded`."""
        plain = np.asarray(offsets, dtype=np.int64)
        if (
            len(plain) < 1
            or plain[0] != 0
            or int(plain[-1]) != len(blob)
            or (np.diff(plain) < 0).any()
        ):
            raise ValueError("path offsets do not match the path bytes")
        raw = np.frombuffer(blob, dtype=np.uint8)
        if (raw == 0).any():
            raise ValueError("a path contains NUL")
        with_nul = np.insert(raw, plain[1:], 0)
        return cls(with_nul.tobytes(), plain + np.arange(len(plain), dtype=np.int64))


def extension_ids(paths: PathTable, out: Path | None = None) -> tuple[list[str], Array]:
    """The sorted extension names of ``paths`` and each path's position in them, a block of
    paths at a time (two passes: the names are sorted only once all are seen); with ``out``,
    the positions are a column written there."""
    table = Extensions()
    scratch = None if out is None else out.with_name(f"{out.stem}.codes.npy")
    codes = store((table.codes(block) for block in paths.blocks()), "<u2", scratch)
    names, rank = table.finish()
    ids = store((rank[c] for c in blocks_of(codes)), "<u2", out)
    if scratch is not None:
        scratch.unlink()
    return names, ids


class Extensions:
    """Extension ids found a block of paths at a time: :meth:`codes` numbers each block's
    extensions in order of first appearance, :meth:`finish` maps those numbers to positions in
    the sorted names. Vectorised: an extension of up to 8 bytes is found and packed into one
    integer per path with numpy; only longer ones are split in Python."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def codes(self, block: PathTable) -> np.ndarray:
        """Each path's extension number (uint16) in an in-memory ``block``."""
        n = len(block)
        if not n:
            return np.zeros(0, dtype=np.uint16)
        seen = self.seen
        lanes = np.arange(8, dtype=np.int64)
        lo, hi = int(block._offsets[0]), int(block._offsets[-1])
        chunk = np.frombuffer(block._blob, dtype=np.uint8)[lo:hi]
        starts = block._offsets[:-1] - lo
        ends = block._offsets[1:] - lo - 1  # at each path's NUL
        where = np.arange(hi - lo, dtype=np.int64)
        dot = np.maximum.reduceat(np.where(chunk == ord("."), where, -1), starts)
        slash = np.maximum.reduceat(np.where(chunk == ord("/"), where, -1), starts)
        slash = np.maximum(slash, starts - 1)  # no slash: the base name is the whole path
        first = np.where(dot > slash + 1, dot + 1, ends)  # a leading dot is no extension
        length = ends - first
        at = first[:, None] + lanes
        bytes_ = np.where(lanes < length[:, None], chunk[np.minimum(at, len(chunk) - 1)], 0)
        shifts = (lanes * 8).astype(np.uint64)
        packed = np.bitwise_or.reduce(bytes_.astype(np.uint64) << shifts, axis=1)
        long = length > 8
        unique, inverse = np.unique(packed[~long], return_inverse=True)
        local = np.array(
            [
                seen.setdefault(
                    int(key).to_bytes(8, "little").rstrip(b"\0").decode(*_ENCODING), len(seen)
                )
                for key in unique.tolist()
            ],
            dtype=np.int64,
        )
        out = np.empty(n, dtype=np.int64)
        out[~long] = local[inverse.reshape(-1)] if len(local) else 0
        for i in np.flatnonzero(long).tolist():  # the rare extension over 8 bytes
            ext = bytes(chunk[first[i] : ends[i]]).decode(*_ENCODING)
            out[i] = seen.setdefault(ext, len(seen))
        if len(seen) > 1 << 16:
            raise ValueError("more than 65536 distinct file extensions")
        return out.astype(np.uint16)

    def finish(self) -> tuple[list[str], np.ndarray]:
        """(sorted names, uint16 map from a code to its name's position)."""
        names = sorted(self.seen)
        position = {name: i for i, name in enumerate(names)}
        rank = np.array([position[e] for e in self.seen] or [0], dtype=np.uint16)
        return names, rank


_PRIME = 0x100000001B3  # FNV-1a's 64-bit prime: odd, so every power is invertible mod 2**64
_power_cache = np.ones(1, dtype=np.uint64)


def _powers(count: int) -> np.ndarray:
    """``_PRIME ** j mod 2**64`` for ``j < count`` (grown and kept as needed)."""
    global _power_cache
    if len(_power_cache) < count:
        values, x = [], 1
        for _ in range(max(count, 2 * len(_power_cache))):
            values.append(x)
            x = (x * _PRIME) & 0xFFFFFFFFFFFFFFFF
        _power_cache = np.array(values, dtype=np.uint64)
    return _power_cache


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: every input bit reaches every output bit."""
    with np.errstate(over="ignore"):
        z = z ^ (z >> np.uint64(30))
        z = z * np.uint64(0xBF58476D1CE4E5B9)
        z = z ^ (z >> np.uint64(27))
        z = z * np.uint64(0x94D049BB133111EB)
        out: np.ndarray = z ^ (z >> np.uint64(31))
        return out
