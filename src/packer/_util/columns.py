"""Per-sample arrays kept on disk and read a block at a time, so memory does not grow with N.

A plan of tens of millions of files has per-sample columns (paths, labels, sizes, mtimes,
extension ids, cut points) of gigabytes. Held in memory, or memory-mapped (mapped pages that are
touched count towards a process's resident memory too), they make a convert's memory grow with
the tree; as :class:`Column` they are plain ``.npy`` files that passes over the plan read a block
at a time with ``pread``. Small trees and library callers that pass no folder keep plain arrays:
both kinds slice to an ``ndarray`` (see :data:`Array`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Union

import numpy as np

from packer.errors import PackError

#: samples per block when a pass walks a column
BLOCK = 1 << 16
#: bytes reserved for the header of a ``.npy`` written before its length is known
_HEADER = 128


def read_npy_header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """(shape, fortran order, dtype) from an open ``.npy`` file, which is left at its data. The
    header is parsed without ``eval`` or pickle; object dtypes are refused (ValueError)."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    if dtype.hasobject:
        raise ValueError("it holds Python objects, which packer never unpickles")
    return tuple(shape), bool(fortran), dtype


class NpyFile:
    """A ``.npy`` file read a block of rows at a time (never mapped or loaded whole)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                shape, fortran, dtype = read_npy_header(f)
                self.offset = f.tell()
        except (OSError, ValueError) as exc:
            raise PackError(f"{path}: not a readable .npy ({exc})") from None
        if fortran:
            raise PackError(f"{path}: not a plain C-order array")
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype: np.dtype[Any] = dtype
        self.items = int(np.prod(self.shape[1:], dtype=np.int64))  # values per row

    def rows(self, a: int, b: int) -> np.ndarray:
        """Rows ``a..b`` (a copy)."""
        a, b = max(0, a), min(self.shape[0], b)
        count = max(0, b - a) * self.items
        offset = self.offset + a * self.items * self.dtype.itemsize
        flat = np.fromfile(self.path, dtype=self.dtype, count=count, offset=offset)
        if len(flat) != count:
            raise PackError(f"{self.path}: truncated")
        return flat.reshape(-1, *self.shape[1:])


class Column(NpyFile):
    """A 1-D ``.npy`` array on disk: ``len``, slices (read into an ``ndarray``), single items,
    blocks; anything else (fancy indexing, ``np.asarray``) loads it whole."""

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            a, b, step = index.indices(len(self))
            if step == 1:
                return self.rows(a, max(a, b))
        elif isinstance(index, (int, np.integer)):
            i = int(index) + (len(self) if index < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError("column index out of range")
            return self.rows(i, i + 1)[0]
        return self.load()[index]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self.load()
        return whole if dtype is None else whole.astype(dtype)

    def load(self) -> np.ndarray:
        return self.rows(0, len(self))

    def tolist(self) -> list[Any]:
        return self.load().tolist()  # type: ignore[no-any-return]

    def __reduce__(self) -> tuple[Any, ...]:
        return (Column, (self.path,))

    def __repr__(self) -> str:
        return f"Column({os.fspath(self.path)!r}, {self.dtype}, n={len(self)})"


#: a per-sample array: in memory, or a :class:`Column` on disk
Array = Union[np.ndarray, Column]  # noqa: UP007 - used at run time


class ColumnWriter:
    """Appends to a 1-D ``.npy`` whose length is known only at the end (the header is written
    with room to spare and filled in by :meth:`close`)."""

    def __init__(self, path: Path, dtype: str) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.count = 0
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._file.write(b" " * _HEADER)

    def append(self, values: np.ndarray) -> None:
        arr = np.ascontiguousarray(values, dtype=self.dtype)
        self._file.write(arr.tobytes())
        self.count += len(arr)

    def close(self) -> Column:
        """Fill in the header: the very bytes ``np.save`` writes for the array (numpy leaves
        room in a 1-D header for the length to grow, so it is always _HEADER bytes long)."""
        header = io.BytesIO()
        fmt = np.lib.format
        fmt.write_array_header_1_0(
            header,
            {
                "descr": fmt.dtype_to_descr(self.dtype),
                "fortran_order": False,
                "shape": (self.count,),
            },
        )
        if len(header.getvalue()) != _HEADER:
            self._file.close()
            raise RuntimeError(f"{self.path}: unexpected .npy header size")
        self._file.seek(0)
        self._file.write(header.getvalue())
        self._file.close()
        return Column(self.path)

    def abort(self) -> None:
        self._file.close()


def store(blocks: Iterable[np.ndarray], dtype: str, path: Path | None) -> Array:
    """Blocks of values, in order, as one array: in memory, or (with ``path``) a column on disk."""
    return store_many(((b,) for b in blocks), (dtype,), None if path is None else [path])[0]


def store_many(
    blocks: Iterable[tuple[np.ndarray, ...]], dtypes: tuple[str, ...], paths: list[Path] | None
) -> tuple[Array, ...]:
    """:func:`store` for several arrays that come a block of each at a time."""
    if paths is None:
        parts: list[list[np.ndarray]] = [[] for _ in dtypes]
        for row in blocks:
            for held, block, dtype in zip(parts, row, dtypes, strict=True):
                held.append(np.asarray(block, dtype=dtype))
        return tuple(
            np.concatenate(held) if held else np.zeros(0, dtype=dtype)
            for held, dtype in zip(parts, dtypes, strict=True)
        )
    writers = [ColumnWriter(path, dtype) for path, dtype in zip(paths, dtypes, strict=True)]
    try:
        for row in blocks:
            for writer, block in zip(writers, row, strict=True):
                writer.append(block)
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    return tuple(writer.close() for writer in writers)


def blocks_of(array: Array, size: int = BLOCK) -> Iterator[np.ndarray]:
    """An array a block at a time (views of an in-memory one, reads of a column)."""
    for a in range(0, len(array), size):
        yield np.asarray(array[a : a + size])


def hash_array(h: Any, array: Array) -> None:
    """Feed an array's bytes to a hashlib object a block at a time (the block's own buffer: no
    copy of it as bytes)."""
    for block in blocks_of(array):
        h.update(np.ascontiguousarray(block))
