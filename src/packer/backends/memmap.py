"""Flat blobs made for ``mmap``: the fastest random access there is.

Each shard is one file holding the stored bytes of its samples back to back; the pack index's
``locations`` array holds each sample's offset and length (the AcumenIndexer idea: O(1) access by
byte offset, no per-sample parsing, no headers). Any language reads sample i with one ``pread``.
"""

from __future__ import annotations

from pathlib import Path

from packer.backends.base import Backend, HashingFile, ShardWriter


class BlobWriter(ShardWriter):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._file = HashingFile(path)

    def add(self, key: str, ext: str, label: int, data: bytes) -> tuple[int, int]:
        offset = self._file.position
        self._file.write(data)
        return offset, len(data)

    def close(self) -> None:
        if not self._file.closed:
            self.sha256 = self._file.close()


class MemmapBackend(Backend):
    name = "memmap"
    summary = "flat byte blobs + offsets, read by memory map (fastest random access)"
    suffix = "bin"

    def open_writer(self, path: Path) -> ShardWriter:
        return BlobWriter(path)
