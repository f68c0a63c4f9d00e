"""WebDataset-compatible tar shards.

Each sample is two members, grouped by key: ``<key>.<ext>`` (the stored bytes) and ``<key>.cls``
(the label as ASCII digits), unless ``labels=none``. Every member has mtime 0, uid/gid 0, empty
owner names and mode 0644, so the same input gives byte-identical shards (tarfile and webdataset
would stamp the current time). Reads go straight to a member's payload offset from the pack index:
no tar header is parsed on open or read.
"""

from __future__ import annotations

import dataclasses
import tarfile
from pathlib import Path

from packer.backends.base import Backend, BackendOptions, ShardWriter, member_stem
from packer.errors import UsageError

_BLOCK = tarfile.BLOCKSIZE  # 512
_RECORD = tarfile.RECORDSIZE  # 10240: tar pads the archive to whole records
_ZEROS = bytes(_RECORD)


@dataclasses.dataclass(frozen=True)
class TarOptions(BackendOptions):
    """Args:
    labels: ``member`` writes a ``<key>.cls`` member per sample (what WebDataset pipelines
        expect); ``none`` leaves labels to the pack index only, saving ~1 KiB per sample.
    """

    labels: str = "member"

    def __post_init__(self) -> None:
        if self.labels not in ("member", "none"):
            raise UsageError(f"tar option labels={self.labels!r} must be 'member' or 'none'")


class TarWriter(ShardWriter):
    def __init__(self, path: Path, options: TarOptions) -> None:
        super().__init__(path)
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._pos = 0
        self._cls = options.labels == "member"

    def _member(self, name: str, data: bytes) -> int:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        offset = self._pos + len(header)
        pad = -len(data) % _BLOCK
        self._file.write(header)
        self._file.write(data)
        if pad:
            self._file.write(_ZEROS[:pad])
        self._pos = offset + len(data) + pad
        return offset

    def add(self, key: str, ext: str, label: int, data: bytes) -> tuple[int, int]:
        stem = member_stem(key)
        offset = self._member(f"{stem}.{ext}", data)
        if self._cls:
            self._member(f"{stem}.cls", b"%d" % label)
        return offset, len(data)

    def close(self) -> None:
        if self._file.closed:
            return
        end = self._pos + 2 * _BLOCK  # end-of-archive marker: two zero blocks
        self._file.write(_ZEROS[: 2 * _BLOCK + (-end % _RECORD)])
        self._file.close()


class TarBackend(Backend):
    name = "tar"
    summary = (
        "WebDataset-style tar shards (<key>.<ext> + <key>.cls); readable by tar and webdataset"
    )
    suffix = "tar"
    options_class = TarOptions

    def open_writer(self, path: Path) -> ShardWriter:
        assert isinstance(self.options, TarOptions)
        return TarWriter(path, self.options)
