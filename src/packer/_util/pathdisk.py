"""Path tables that stay on disk: :class:`DiskPaths` (a plan's ``paths.npy`` and
``path_offsets.npy``, read a block at a time) and :class:`PathSink`, which a scan writes paths
into as it walks, so memory does not grow with the number of files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from packer._util.columns import Array, Column, ColumnWriter
from packer._util.pathtable import PathTable


class DiskPaths(PathTable):
    """A :class:`PathTable` whose paths stay on disk in the plan's form (``paths.npy``: the
    paths' bytes back to back; ``path_offsets.npy``: uint64, ``n + 1``), read a block at a time:
    slices are in-memory tables, iteration and the block passes read as they go, and pickling
    sends the two file names (workers that share the filesystem read their own slices)."""

    __slots__ = ("_plain", "_raw")

    def __init__(self, raw: Column, plain: Column) -> None:
        self._raw = raw
        self._plain = plain

    @classmethod
    def open(cls, folder: Path) -> DiskPaths:
        return cls(Column(folder / "paths.npy"), Column(folder / "path_offsets.npy"))

    def __len__(self) -> int:
        return len(self._plain) - 1

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            a, b, step = index.indices(len(self))
            if step == 1:
                b = max(a, b)
                plain = self._plain[a : b + 1].astype(np.int64)
                raw = self._raw[int(plain[0]) : int(plain[-1])]
                return PathTable.from_encoded(raw.tobytes(), plain - plain[0])
            return PathTable.from_strings([self[i] for i in range(a, b, step)])
        n = len(self)
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("path index out of range")
        return self[i : i + 1][0]

    def __iter__(self) -> Iterator[str]:
        for block in self.blocks():
            yield from block

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PathTable):
            return super().__eq__(other)
        if len(self) != len(other):
            return False
        return all(a == b for a, b in zip(self.blocks(), other.blocks(), strict=True))

    __hash__ = None

    @property
    def nbytes(self) -> int:
        return 0  # nothing held in memory

    def encoded(self) -> tuple[bytes, np.ndarray]:
        return self._raw.load().tobytes(), self._plain.load()

    def encoded_columns(self) -> tuple[Array, Array]:
        return self._raw, self._plain

    def files(self) -> tuple[Path, Path]:
        """(paths.npy, path_offsets.npy)"""
        return self._raw.path, self._plain.path

    def __reduce__(self) -> tuple[Any, ...]:
        return (DiskPaths, (self._raw, self._plain))


class PathSink:
    """Where a scan puts its paths as it finds them: folders are held (in memory, or with a
    ``folder`` spilled to a scratch file there) until their order is known, then added in pack
    order with their label; :meth:`finish` gives the paths (a :class:`DiskPaths` with a folder)
    and the labels (a :class:`Column` with a folder). Memory holds one record per folder."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self._held: list[bytes] = []
        self._spilled: list[tuple[int, int]] = []
        self._order: list[tuple[int, int, int]] = []  # (held chunk, label, count), in pack order
        self._scratch: BinaryIO | None = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self._scratch = open(folder / "scan.scratch", "w+b")  # noqa: SIM115 - finish()

    def hold(self, chunk: bytes) -> int:
        """Keep a folder's paths (NUL-terminated, encoded) for later; returns its handle."""
        if self._scratch is None:
            self._held.append(chunk)
            return len(self._held) - 1
        self._spilled.append((self._scratch.tell(), len(chunk)))
        self._scratch.write(chunk)
        return len(self._spilled) - 1

    def add(self, handle: int, label: int, count: int) -> None:
        """Append a held folder's ``count`` paths, labelled ``label``."""
        self._order.append((handle, label, count))

    def close(self) -> None:
        """Drop what is held (a scan that failed)."""
        self._held = []
        if self._scratch is not None and not self._scratch.closed:
            self._scratch.close()
            assert self.folder is not None
            (self.folder / "scan.scratch").unlink(missing_ok=True)

    def finish(self) -> tuple[PathTable, Array]:
        if self.folder is None or self._scratch is None:
            paths = PathTable.concat(self._held[h] for h, _, _ in self._order)
            self._held = []
            label_of = np.array([label for _, label, _ in self._order], dtype=np.int32)
            return paths, np.repeat(label_of, [count for _, _, count in self._order])
        folder, scratch = self.folder, self._scratch
        scratch.flush()
        raw = ColumnWriter(folder / "paths.npy", "u1")
        plain = ColumnWriter(folder / "path_offsets.npy", "<u8")
        labels = ColumnWriter(folder / "labels.npy", "<i4")
        try:
            plain.append(np.zeros(1, dtype=np.uint64))
            end = 0
            for handle, label, count in self._order:
                offset, length = self._spilled[handle]
                chunk = np.frombuffer(os.pread(scratch.fileno(), length, offset), dtype=np.uint8)
                nul = np.flatnonzero(chunk == 0)
                raw.append(np.delete(chunk, nul))
                plain.append(end + nul - np.arange(len(nul)))
                end += len(chunk) - len(nul)
                labels.append(np.full(count, label, dtype=np.int32))
        except BaseException:
            for w in (raw, plain, labels):
                w.abort()
            raise
        finally:
            scratch.close()
            (folder / "scan.scratch").unlink()
        return DiskPaths(raw.close(), plain.close()), labels.close()
