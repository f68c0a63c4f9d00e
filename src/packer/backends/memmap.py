"""Flat files made for ``mmap``: the fastest random access there is.

Bytes mode (default): each shard is one ``.bin`` file holding the stored bytes of its samples back
to back; the pack index's ``locations`` array holds each sample's offset and length (the
AcumenIndexer idea: O(1) access by byte offset, no per-sample parsing, no headers).

Pixel mode (``--size HxW --mode RGB|L``): each shard is one ``.npy`` array of N x H x W x C uint8
decoded pixels, readable with ``numpy.load(path, mmap_mode="r")``; reading a sample needs no image
decoding at all.
"""

from __future__ import annotations

from pathlib import Path

from packer.backends.base import Backend, NoOptions, ShardWriter
from packer.backends.hashing import HashingFile


class BlobWriter(ShardWriter):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._file = HashingFile(path)

    def add(self, key: str, ext: str, label: int, data: bytes) -> tuple[int, int]:
        offset = self._file.position
        self._file.write(data)
        return offset, len(data)

    def complete(self) -> None:
        self.sha256 = self._file.close()

    def release(self) -> None:
        self._file.abandon()


NPY_HEADER = 128  # a fixed header size, rewritten with the final row count at close


def npy_header(shape: tuple[int, ...]) -> bytes:
    """A format-1.0 ``.npy`` header for a C-order uint8 array, padded to exactly 128 bytes."""
    text = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape!r}, }}"
    body = text.encode("latin1").ljust(NPY_HEADER - 10 - 1) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


class PixelArrayWriter(ShardWriter):
    """Appends fixed-shape pixel rows to a ``.npy``; the header's row count is fixed up at close."""

    def __init__(self, path: Path, shape: tuple[int, int, int]) -> None:
        super().__init__(path)
        self._shape = shape
        self._row = shape[0] * shape[1] * shape[2]
        self._file = open(path, "wb")  # noqa: SIM115 - closed in complete() or release()
        self._file.write(npy_header((0, *shape)))
        self._count = 0

    def add(self, key: str, ext: str, label: int, data: bytes) -> tuple[int, int]:
        if len(data) != self._row:
            raise ValueError(f"{key}: {len(data)} pixel bytes, expected {self._row}")
        self._file.write(data)
        self._count += 1
        return NPY_HEADER + (self._count - 1) * self._row, self._row

    def complete(self) -> None:
        self._file.seek(0)
        self._file.write(npy_header((self._count, *self._shape)))
        self._file.close()

    def release(self) -> None:
        self._file.close()


class MemmapBackend(Backend[NoOptions]):
    name = "memmap"
    summary = "flat byte blobs + offsets, or N x H x W x C pixel .npy; memory-mapped (fastest)"
    suffix = "bin"
    stores_pixels = True

    @property
    def labels_in_data(self) -> bool:
        return False

    def data_file_name(self, shard: int) -> str:
        return f"shard-{shard:05d}.{'npy' if self.pixel_shape else 'bin'}"

    def open_writer(self, path: Path) -> ShardWriter:
        if self.pixel_shape is not None:
            return PixelArrayWriter(path, self.pixel_shape)
        return BlobWriter(path)
