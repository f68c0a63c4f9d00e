"""WebDataset-compatible tar shards.

Each sample is two members, grouped by key: ``<key>.<ext>`` (the stored bytes) and ``<key>.cls``
(the label as ASCII digits), unless ``labels=none``. Beside the shards, ``wids.json`` and
``dali/shard-NNNNN.idx`` let wids and NVIDIA DALI open the pack by index (``loader_indexes``). Every member has mtime 0, uid/gid 0, empty
owner names and mode 0644, so the same input gives byte-identical shards (tarfile and webdataset
would stamp the current time). Reads go straight to a member's payload offset from the pack index:
no tar header is parsed on open or read.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from packer.backends.base import Backend, BackendOptions, ShardWriter
from packer.backends.hashing import HashingFile
from packer.backends.names import member_stem
from packer.backends.tar_loaders import loader_files
from packer.errors import UsageError

if TYPE_CHECKING:
    from packer.format.index import Index
    from packer.format.manifest import Manifest

# tarfile.BLOCKSIZE and RECORDSIZE, written out: opening a pack to read never imports tarfile
# (~2 ms of the open); tests/test_interop.py checks they agree.
_BLOCK = 512
_RECORD = 10240  # tar pads the archive to whole records
_ZEROS = bytes(_RECORD)
_MAX_USTAR_SIZE = 8**11 - 1  # larger members need a pax size record


def _tarfile_header(name: str, size: int) -> bytes:
    """The reference: tarfile's own pax/ustar header with our fixed metadata."""
    import tarfile  # writing only

    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


# tarfile builds each header field by field in Python (~25 us a member). For the common member -- an
# ASCII name of at most 100 bytes, under 8 GiB -- its output is this template with the name, size and
# checksum filled in, which costs ~2 us. tests/test_interop.py checks the two agree byte for byte.
@functools.cache
def _template() -> tuple[bytes, int]:
    """The header of an empty-named, empty member and its checksum without name and size."""
    template = _tarfile_header("", 0)
    return template, sum(template[:148]) + 8 * 32 + sum(template[156:]) - sum(template[124:136])


def fast_header(name: str, size: int) -> bytes:
    """A ustar header identical to ``_tarfile_header(name, size)``."""
    raw = name.encode("ascii") if name.isascii() else b""
    if not raw or len(raw) > 100 or size > _MAX_USTAR_SIZE:
        return _tarfile_header(name, size)
    template, template_sum = _template()
    size_field = b"%011o\x00" % size
    checksum = template_sum + sum(raw) + sum(size_field)
    return b"".join(
        (
            raw,
            bytes(100 - len(raw)),
            template[100:124],
            size_field,
            template[136:148],
            b"%06o\x00 " % checksum,
            template[156:],
        )
    )


@dataclasses.dataclass(frozen=True)
class TarOptions(BackendOptions):
    """Args:
    labels: ``member`` writes a ``<key>.cls`` member per sample (what WebDataset pipelines
        expect); ``none`` leaves labels to the pack index only, saving ~1 KiB per sample.
    loader_indexes: also write ``wids.json`` and DALI ``dali/*.idx`` beside the shards, so those
        loaders open the pack without scanning it.
    """

    labels: str = "member"
    loader_indexes: bool = True

    def __post_init__(self) -> None:
        if self.labels not in ("member", "none"):
            raise UsageError(f"tar option labels={self.labels!r} must be 'member' or 'none'")


class TarWriter(ShardWriter):
    def __init__(self, path: Path, options: TarOptions) -> None:
        super().__init__(path)
        self._file = HashingFile(path)
        self._cls = options.labels == "member"

    def add(self, key: str, ext: str, label: int, data: bytes) -> tuple[int, int]:
        stem = member_stem(key)
        header = fast_header(f"{stem}.{ext}", len(data))
        write = self._file.write
        offset = self._file.position + len(header)
        write(header)
        write(data)
        write(_ZEROS[: -len(data) % _BLOCK])
        if self._cls:
            digits = b"%d" % label
            write(fast_header(f"{stem}.cls", len(digits)))
            write(digits)
            write(_ZEROS[: -len(digits) % _BLOCK])
        return offset, len(data)

    def complete(self) -> None:
        end = self._file.position + 2 * _BLOCK  # end-of-archive marker: two zero blocks
        self._file.write(_ZEROS[: 2 * _BLOCK + (-end % _RECORD)])
        self.sha256 = self._file.close()

    def release(self) -> None:
        self._file.abandon()


class TarBackend(Backend[TarOptions]):
    name = "tar"
    summary = (
        "WebDataset-style tar shards (<key>.<ext> + <key>.cls); readable by tar and webdataset"
    )
    suffix = "tar"
    options_class = TarOptions

    @property
    def labels_in_data(self) -> bool:
        return self.options.labels == "member"

    def open_writer(self, path: Path) -> ShardWriter:
        return TarWriter(path, self.options)

    def sidecar_files(self, manifest: Manifest, index: Index) -> dict[str, bytes]:
        """``wids.json`` and a DALI ``.idx`` per shard (see :mod:`packer.backends.tar_loaders`)."""
        if not self.options.loader_indexes:
            return {}
        cls_members = self.options.labels == "member"
        return loader_files(manifest, index, cls_members=cls_members, header=fast_header)
