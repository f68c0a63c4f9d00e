"""Zip archives, one per shard, members stored uncompressed by default.

JPEG/PNG/WebP are already compressed: deflate costs time and saves ~nothing, and a stored member's
payload is a plain byte range that the core reads straight from a memory map. Member names are the
keys plus their original extension; dates are fixed at 1980-01-01 so output is reproducible.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from pathlib import Path

from packer.backends.base import Backend, BackendOptions, DataReader, KeyOf, ShardWriter
from packer.backends.names import member_stem
from packer.backends.ranges import MmapRangeReader
from packer.errors import PackError, UsageError

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date zip can store


@dataclasses.dataclass(frozen=True)
class ZipOptions(BackendOptions):
    """Args:
    compression: ``stored`` (default) or ``deflate``.
    level: deflate level 1-9 (ignored when stored).
    """

    compression: str = "stored"
    level: int = 6

    def __post_init__(self) -> None:
        if self.compression not in ("stored", "deflate"):
            raise UsageError(
                f"zip option compression={self.compression!r} must be 'stored' or 'deflate'"
            )
        if not 1 <= self.level <= 9:
            raise UsageError(f"zip option level={self.level} must be between 1 and 9")


class ZipWriter(ShardWriter):
    def __init__(self, path: Path, options: ZipOptions) -> None:
        super().__init__(path)
        import zipfile  # writing only: reading is byte ranges, and opening stays quick

        self._zipfile = zipfile
        self._deflate = options.compression == "deflate"
        self._zip = zipfile.ZipFile(
            path,
            "w",
            compression=zipfile.ZIP_DEFLATED if self._deflate else zipfile.ZIP_STORED,
            compresslevel=options.level if self._deflate else None,
            allowZip64=True,
        )

    def add(self, key: str, ext: str, label: int, data: bytes) -> tuple[int, int]:
        zipfile = self._zipfile
        info = zipfile.ZipInfo(f"{member_stem(key)}.{ext}", date_time=_EPOCH)
        info.external_attr = 0o644 << 16
        info.create_system = 3  # unix, whatever machine wrote it
        info.compress_type = zipfile.ZIP_DEFLATED if self._deflate else zipfile.ZIP_STORED
        self._zip.writestr(info, data)
        fp = self._zip.fp
        assert fp is not None
        # writestr leaves the file positioned right after the member's (possibly compressed) bytes.
        end = fp.tell()
        return end - info.compress_size, info.compress_size

    def complete(self) -> None:
        self._zip.close()

    def release(self) -> None:
        # No central directory for a shard being dropped: with fp gone, ZipFile.close() (also the
        # one its __del__ makes) has nothing to write.
        fp, self._zip.fp = self._zip.fp, None
        if fp is not None:
            fp.close()


class DeflateReader(MmapRangeReader):
    """Byte ranges hold raw deflate streams: inflate after slicing."""

    def read(self, file_id: int, offset: int, length: int, index: int) -> bytes:
        raw = super().read(file_id, offset, length, index)
        try:
            return zlib.decompress(raw, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise PackError(
                f"{self.paths[file_id]}: sample {index} does not inflate ({exc}); run `pack verify`"
            ) from None


class ZipBackend(Backend[ZipOptions]):
    name = "zip"
    summary = "zip archives, members stored (or deflated); readable by unzip and zipfile"
    suffix = "zip"
    options_class = ZipOptions

    @property
    def labels_in_data(self) -> bool:
        return False

    @property
    def raw_ranges(self) -> bool:
        return self.options.compression == "stored"

    def open_writer(self, path: Path) -> ShardWriter:
        return ZipWriter(path, self.options)

    def open_reader(self, paths: Sequence[Path], key_of: KeyOf) -> DataReader:
        return DeflateReader(paths)  # stored members are raw ranges, read by the core itself
