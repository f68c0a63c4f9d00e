"""The backend interface: a backend only stores and fetches bytes.

The core (packer.convert, packer.pack) owns everything that must be right for every format:
scanning and order, labels, keys, the manifest, checksums, sharding, staging and the atomic
rename. A backend supplies three small things:

* a :class:`Backend` subclass naming itself, its data-file suffix and its options;
* a :class:`ShardWriter` that appends samples to one data file and says where each one went;
* optionally a :class:`ShardReader` that fetches a sample back from that location. Backends whose
  locations are plain byte ranges of the data file (``raw_ranges``) need none: the core reads them
  straight from a memory map, which is the fastest read path there is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import mmap
import os
import types
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Self, get_type_hints

import numpy as np

from packer.errors import PackError, UsageError

#: Returns the key of sample ``i`` as UTF-8 (surrogateescape) bytes; handed to readers that store
#: samples by key (e.g. LMDB).
KeyOf = Callable[[int], bytes]


@dataclasses.dataclass(frozen=True)
class BackendOptions:
    """Base for a backend's options: a frozen dataclass of str/int/float/bool fields.

    Options are recorded in the manifest (``to_dict``) and rebuilt from it or from the CLI's
    ``-o key=value`` strings (``from_dict``), so every field needs a default.
    """

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, backend: str = "") -> Self:
        hints = get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if name not in known:
                choices = ", ".join(sorted(known)) or "none"
                raise UsageError(
                    f"unknown option {name!r} for format {backend or '?'}; its options are: {choices}"
                )
            values[name] = _coerce(name, value, hints[name], backend)
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"bad options for format {backend or '?'}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(name: str, value: Any, kind: Any, backend: str) -> Any:
    """Turn a CLI string (or a JSON value) into the field's type, or explain what is expected."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
    elif kind in (int, float) and not isinstance(value, bool):
        try:
            return kind(value)
        except (TypeError, ValueError):
            pass
    elif kind is str and isinstance(value, str):
        return value
    expected = getattr(kind, "__name__", str(kind))
    raise UsageError(f"option {name}={value!r} for format {backend or '?'} must be a {expected}")


@dataclasses.dataclass(frozen=True)
class NoOptions(BackendOptions):
    """For backends without options."""


class ShardWriter(ABC):
    """Writes the samples of one shard into one data file at ``path``.

    Used as a context manager: leaving it with an exception calls :meth:`abort`, so a crash never
    leaves a half-written data file that looks complete. A writer that hashed its file while writing
    sets ``sha256`` in :meth:`close`; otherwise the core reads the file back to hash it.
    """

    sha256: str | None = None

    def __init__(self, path: Path) -> None:
        self.path = path

    @abstractmethod
    def add(self, key: str, ext: str, label: int, data: bytes) -> tuple[int, int]:
        """Store one sample; return its location ``(offset, length)`` in this data file.

        For ``raw_ranges`` backends the location must be the exact byte range of ``data`` in the
        file. Others may use any pair their reader understands (a row number, say).
        """

    @abstractmethod
    def close(self) -> None:
        """Finish the data file (footers, flush). Called once, only after a successful write."""

    def final_locations(self) -> np.ndarray | None:
        """After :meth:`close`: an ``(n, 2)`` array of ``(offset, length)`` replacing what ``add``
        returned, for formats that only know where bytes landed once the file is complete (the
        payload positions inside an HDF5 or Arrow file). ``None`` keeps ``add``'s locations."""
        return None

    def abort(self) -> None:
        """Discard the partial data file."""
        with contextlib.suppress(Exception):
            self.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class HashingFile:
    """A write-only file that buffers, and writes and sha256-hashes in a background thread.

    Both ``write`` and ``hashlib.update`` release the GIL, so on a multi-core machine the disk I/O and
    the hash of a stream-written data file cost the converting thread almost nothing, and the file
    need not be read back to checksum it. At most two buffers are in flight: memory stays bounded.
    """

    def __init__(self, path: Path, buffer_size: int = 4 << 20) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._hash = hashlib.sha256()
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._buffer_size = buffer_size
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="packer-write")
        self._pending: Future[None] | None = None
        self.position = 0
        self.closed = False

    def _flush_chunk(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)

    def _hand_off(self) -> None:
        chunk = b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        if self._pending is not None:
            self._pending.result()  # surfaces write errors (disk full) in the caller's thread
        self._pending = self._pool.submit(self._flush_chunk, chunk)

    def write(self, data: bytes) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
        self.position += len(data)
        if self._buffered >= self._buffer_size:
            self._hand_off()

    def close(self) -> str:
        """Flush everything; return the file's sha256."""
        if not self.closed:
            self.closed = True
            try:
                self._hand_off()
                assert self._pending is not None
                self._pending.result()
            finally:
                self._pool.shutdown(wait=True)
                self._file.close()
        return self._hash.hexdigest()


class ShardReader(ABC):
    """Fetches samples back from a pack's data files. Opened lazily, once per process."""

    @abstractmethod
    def read(self, file_id: int, offset: int, length: int, index: int) -> bytes:
        """Return the payload of sample ``index`` stored at ``(offset, length)`` of data file
        ``file_id``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release handles."""


class MmapRangeReader(ShardReader):
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


class Backend(ABC):
    """A pack format. Subclasses set the class attributes and implement :meth:`open_writer`.

    Args:
        options: this backend's options (an instance of ``options_class``); defaults if omitted.
        pixel_shape: ``(H, W, C)`` when the pack stores decoded uint8 pixels of one fixed shape
            (only for backends with ``stores_pixels``); None for encoded bytes.
    """

    #: Name used with ``--format`` and in the manifest.
    name: ClassVar[str]
    #: One line for ``pack formats``.
    summary: ClassVar[str] = ""
    #: File-name suffix of a data file, without the dot (``tar``, ``zip``, ...).
    suffix: ClassVar[str]
    #: The dataclass of this backend's options.
    options_class: ClassVar[type[BackendOptions]] = NoOptions
    #: True if the backend can store fixed-shape decoded pixels (``--size`` without ``--reencode``).
    stores_pixels: ClassVar[bool] = False

    def __init__(
        self, options: BackendOptions | None = None, pixel_shape: tuple[int, int, int] | None = None
    ) -> None:
        self.options = options if options is not None else self.options_class()
        if pixel_shape is not None and not self.stores_pixels:
            raise UsageError(f"format {self.name} stores encoded images, not pixels")
        self.pixel_shape = pixel_shape

    @property
    def raw_ranges(self) -> bool:
        """True when a sample's location is the exact byte range of its payload in the data file."""
        return True

    def data_file_name(self, shard: int) -> str:
        return f"shard-{shard:05d}.{self.suffix}"

    @abstractmethod
    def open_writer(self, path: Path) -> ShardWriter:
        """A writer for one new data file at ``path``."""

    def open_reader(self, paths: Sequence[Path], key_of: KeyOf) -> ShardReader:
        """A reader over all data files of a pack (in manifest order)."""
        return MmapRangeReader(paths)


def member_stem(key: str) -> str:
    """The archive member name of a key, without extension, safe for WebDataset-style grouping.

    WebDataset splits a member name at the first dot of its base name, so dots there would split one
    sample into several; undecodable bytes (kept by ``surrogateescape``) cannot be stored as UTF-8.
    Both, and ``%`` itself, are percent-encoded, so the mapping is reversible and collision-free:
    ``cat/img.001`` -> ``cat/img%2E001``. Keys in the pack index are always the original ones.
    """
    head, slash, base = key.rpartition("/")
    if "%" not in key and "." not in base and key.isascii():
        return key  # the common case, no copy
    return _escape(head, dots=False) + slash + _escape(base, dots=True)


def _escape(text: str, *, dots: bool) -> str:
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch == "%" or (dots and ch == "."):
            out.append(f"%{code:02X}")
        elif 0xDC80 <= code <= 0xDCFF:  # a raw byte smuggled in by surrogateescape
            out.append(f"%{code - 0xDC00:02X}")
        else:
            out.append(ch)
    return "".join(out)
