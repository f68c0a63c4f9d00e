"""Memory-mapped byte ranges: the reader of every backend whose samples are raw byte ranges of
its data files (the reader's fast path; see :meth:`packer.read.pack.Pack.read_range`)."""

from __future__ import annotations

import mmap
import os
from collections.abc import Sequence
from pathlib import Path

from packer.backends.base import DataReader
from packer.errors import PackError


class MmapRangeReader(DataReader):
    """Reads byte ranges from memory-mapped data files: the shared reader of raw-range backends."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.maps: list[mmap.mmap | bytes] = [self._map(p) for p in self.paths]

    @staticmethod
    def _map(path: Path) -> mmap.mmap | bytes:
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size == 0:
                    return b""  # mmap cannot map an empty file
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise PackError(
                f"{path}: cannot open data file ({exc.strerror}); run `pack verify`"
            ) from None

    def read(self, file_id: int, offset: int, length: int, index: int) -> bytes:
        data = self.maps[file_id][offset : offset + length]
        if len(data) != length:
            raise PackError(
                f"{self.paths[file_id]}: sample {index} lies past the end of the file "
                "(truncated data file); run `pack verify` and re-create the pack"
            )
        return bytes(data)

    def close(self) -> None:
        for m in self.maps:
            if isinstance(m, mmap.mmap):
                m.close()
        self.maps = []
