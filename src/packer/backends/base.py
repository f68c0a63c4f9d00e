"""The backend interface: a backend only stores and fetches bytes.

The core (packer.convert, packer.read.pack) owns everything that must be right for every format:
scanning and order, labels, keys, the manifest, checksums, sharding, staging and the atomic
rename. A backend supplies three small things:

* a :class:`Backend` subclass naming itself, its data-file suffix and its options;
* a :class:`ShardWriter` that appends samples to one data file and says where each one went;
* a :class:`DataReader` that fetches a sample back from that location, unless the backend declares
  ``raw_ranges`` (locations are plain byte ranges of the data file): the core then reads them
  straight from a memory map, which is the fastest read path there is.

Helpers several backends share live in :mod:`packer.backends.ranges`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar, cast, get_type_hints

import numpy as np

from packer.errors import UsageError

if TYPE_CHECKING:
    from packer.format.index import Index
    from packer.format.manifest import Manifest

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

    A writer ends in exactly one of two ways, and the base class makes each happen at most once:

    * :meth:`finish` after every :meth:`add` succeeded: the subclass's :meth:`complete` writes
      footers and flushes, so the file is whole;
    * :meth:`discard` on any failure (or when :meth:`complete` itself fails): the subclass's
      :meth:`release` drops its handles *without* completing anything (no end marker, no commit,
      no footer), then the data file and every path in :attr:`scratch` are deleted.

    Used as a context manager: leaving the block normally finishes, with an exception discards.
    A writer that hashed its file while writing sets ``sha256`` in :meth:`complete`; otherwise the
    core reads the file back to hash it.
    """

    sha256: str | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        #: side files the writer creates (staged payloads...); removed by :meth:`discard`
        self.scratch: list[Path] = []
        self._ended = False

    @abstractmethod
    def add(self, key: str, ext: str, label: int, data: bytes) -> tuple[int, int]:
        """Store one sample; return its location ``(offset, length)`` in this data file.

        For ``raw_ranges`` backends the location must be the exact byte range of ``data`` in the
        file. Others may use any pair their reader understands (a row number, say).
        """

    @abstractmethod
    def complete(self) -> None:
        """Make the data file whole (footers, flush, commit). Called once, after the last add."""

    def release(self) -> None:  # noqa: B027 - optional hook
        """Close handles without completing the file; called once when the shard is discarded."""

    def final_locations(self) -> np.ndarray | None:
        """After :meth:`finish`: an ``(n, 2)`` array of ``(offset, length)`` replacing what ``add``
        returned, for formats that only know where bytes landed once the file is complete (the
        payload positions inside an HDF5 or Arrow file). ``None`` keeps ``add``'s locations."""
        return None

    def finish(self) -> None:
        """Complete the data file (once); if completing fails, the shard is discarded."""
        if self._ended:
            return
        self._ended = True
        try:
            self.complete()
        except BaseException:
            self._remove()
            raise

    def discard(self) -> None:
        """Drop the partial data file and its scratch files (once; never after :meth:`finish`)."""
        if self._ended:
            return
        self._ended = True
        self._remove()

    def _remove(self) -> None:
        with contextlib.suppress(Exception):
            self.release()
        for path in (self.path, *self.scratch):
            path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.discard()


class DataReader(ABC):
    """Fetches samples back from all data files of a pack. Opened lazily, once per process."""

    @abstractmethod
    def read(self, file_id: int, offset: int, length: int, index: int) -> bytes:
        """Return the payload of sample ``index`` stored at ``(offset, length)`` of data file
        ``file_id``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release handles."""


OptionsT = TypeVar("OptionsT", bound=BackendOptions)


class Backend(ABC, Generic[OptionsT]):
    """A pack format. Subclasses set the class attributes and implement :meth:`open_writer`.

    Subclass as ``Backend[MyOptions]`` with ``options_class = MyOptions``: ``self.options`` is then
    typed as ``MyOptions``.

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
        self, options: OptionsT | None = None, pixel_shape: tuple[int, int, int] | None = None
    ) -> None:
        self.options: OptionsT = (
            options if options is not None else cast(OptionsT, self.options_class())
        )
        if not isinstance(self.options, self.options_class):
            raise TypeError(f"{self.name}: options must be {self.options_class.__name__}")
        if pixel_shape is not None and not self.stores_pixels:
            raise UsageError(f"format {self.name} stores encoded images, not pixels")
        self.pixel_shape = pixel_shape
        #: the pack's class names (label i = classes[i]), set by the core before writing, for
        #: formats that record them in their data files (:attr:`classes_in_data`)
        self.classes: tuple[str, ...] = ()

    @property
    def raw_ranges(self) -> bool:
        """True when a sample's location is the exact byte range of its payload in the data file.

        A declared capability: the core then reads samples straight from memory maps of the data
        files (the fastest read path there is) and never calls :meth:`open_reader`.
        """
        return True

    @property
    def classes_in_data(self) -> bool:
        """True when every data file records the class names (e.g. a ``ClassLabel`` feature), so
        a class added or renamed changes every data file. Default: False."""
        return False

    @property
    def labels_in_data(self) -> bool:
        """True when the data files hold the labels (so a shard whose labels shift, as when a
        class is added before its own, must be written again by ``--update``). Default: True,
        the safe answer for a plugin that does not say."""
        return True

    def data_file_name(self, shard: int) -> str:
        return f"shard-{shard:05d}.{self.suffix}"

    def sidecar_files(self, manifest: Manifest, index: Index) -> dict[str, bytes]:
        """Files other tools read beside the data files (relative name -> bytes), e.g. a loader's
        own index; derived from the finished pack index, so convert and merge write the same.
        The core writes them and records their sha256 with the index files. Default: none."""
        return {}

    @abstractmethod
    def open_writer(self, path: Path) -> ShardWriter:
        """A writer for one new data file at ``path``."""

    def open_reader(self, paths: Sequence[Path], key_of: KeyOf) -> DataReader:
        """A reader over all data files of a pack (in manifest order), for backends without raw
        ranges."""
        raise NotImplementedError(
            f"backend {self.name}: raw_ranges is False, so it must implement open_reader()"
        )
