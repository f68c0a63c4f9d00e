"""Reading a pack: ``open_pack(path)`` -> :class:`Pack`, indexable by position or key.

Opening reads the manifest and memory-maps the index; data files are opened on first read, once per
process (a handle opened before ``fork`` is never used after it), and a Pack pickles as just its path,
so it can be handed to DataLoader workers.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
import os
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Self

import numpy as np

from packer._util.pagecache import warm
from packer.backends.base import Backend, DataReader
from packer.backends.ranges import MmapRangeReader
from packer.backends.registry import make_backend
from packer.errors import PackError
from packer.format.index import Index
from packer.format.keys import file_name
from packer.format.manifest import Manifest


class Sample(NamedTuple):
    """One sample: its key (relative path without extension), label, stored bytes, extension."""

    key: str
    label: int
    data: bytes
    ext: str

    @property
    def file_name(self) -> str:
        """The relative path this sample came from (where ``pack extract`` writes it)."""
        return file_name(self.key, self.ext)


BLOCK_ROWS = 4096  # rows of index pulled at once by sequential iteration


class Pack:
    """An open pack. ``len(pack)``, ``pack[i]``, ``pack.get(key)``, iteration, ``pack.labels``.

    Args:
        path: the pack folder written by ``pack convert``.
        in_memory: load every data file into the page cache when first read, and keep it mapped.
            The memory is the kernel's page cache, shared by every process that reads the pack
            (DataLoader workers included), not a private copy per worker.
    """

    def __init__(self, path: str | os.PathLike[str], *, in_memory: bool = False) -> None:
        self.path = Path(path)
        self.in_memory = in_memory
        self._dir_fd = -1
        self._reader: DataReader | None = None
        # Pin the pack folder: every later open (index, data files, lazily, in this process or a
        # forked child) goes through this descriptor, so a pack replaced by `convert --force`
        # while we read keeps serving the old files, or fails cleanly -- never a mix of both.
        self.root = self._pin()
        with self._real_paths_in_errors():
            self.manifest = Manifest.read(self.root)
        shape = self.manifest.sample_shape
        self.shape: tuple[int, int, int] | None = (shape[0], shape[1], shape[2]) if shape else None
        self.backend: Backend[Any] = make_backend(
            self.manifest.backend_name, self.manifest.options, self.shape
        )
        self.index = Index(self.root, self.manifest)
        with self._real_paths_in_errors():
            self.index.load_all()  # map and check every index file now: ~1 ms; errors surface at open
        self._n = self.manifest.num_samples
        self._extensions = self.manifest.extensions
        self._hot: _HotIndex | None = None
        self._data_paths = [self.root / d.name for d in self.manifest.data_files]
        self._maps: list[Any] | None = None  # raw-range fast path: the reader's memory maps
        self._pid = -1
        #: index rows pulled at once by sequential iteration (smaller in tests, to cross blocks)
        self.block_rows = BLOCK_ROWS

    def _pin(self) -> Path:
        try:
            self._dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise PackError(
                f"{self.path}: not a pack (no such folder); pass the folder `pack convert` wrote"
            ) from None
        except NotADirectoryError:
            raise PackError(
                f"{self.path}: not a pack (not a folder); pass the folder `pack convert` wrote"
            ) from None
        except OSError as exc:
            raise PackError(
                f"{self.path}: cannot open ({exc.strerror}); check its permissions"
            ) from None
        pinned = Path(f"/proc/self/fd/{self._dir_fd}")
        return pinned if pinned.is_dir() else self.path  # no /proc: plain paths

    @contextlib.contextmanager
    def _real_paths_in_errors(self) -> Iterator[None]:
        """Errors name the pack's real path, not the /proc/self/fd alias it is read through."""
        try:
            yield
        except PackError as exc:
            if self.root == self.path:
                raise
            raise PackError(str(exc).replace(str(self.root), str(self.path))) from None
        except OSError as exc:  # a plugin's reader on a missing or unreadable data file
            name = Path(exc.filename).name if exc.filename else "a data file"
            raise PackError(
                f"{self.path / name}: cannot be read ({exc.strerror or exc}); run `pack verify`"
            ) from None

    # -- metadata, no data file touched ---------------------------------------------------------

    def __len__(self) -> int:
        return self._n

    @property
    def classes(self) -> list[str]:
        return self.manifest.classes

    @property
    def labels(self) -> np.ndarray:
        """int32 label of every sample, memory-mapped from the index: no data file is read."""
        return self.index.labels

    def label(self, i: int) -> int:
        return int(self.index.labels[self._position(i)])

    def _hot_index(self) -> _HotIndex:
        if self._hot is None:
            self._hot = _HotIndex(self.index)
        return self._hot

    def key(self, i: int) -> str:
        return self.index.key(self._position(i))

    def keys(self) -> Iterator[str]:
        return self.index.iter_keys()

    def index_of(self, key: str) -> int:
        """Position of ``key``; KeyError if absent. O(log n), no dict of all keys is built."""
        i = self.index.find(key)
        if i is None:
            raise KeyError(key)
        return i

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.index.find(key) is not None

    # -- data ---------------------------------------------------------------------------------

    def _position(self, i: int) -> int:
        if type(i) is not int:
            i = operator.index(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"sample {i} out of range for a pack of {self._n}")
        return i

    def _open_reader(self) -> DataReader:
        if self._dir_fd < 0:  # used again after close(): take a fresh, consistent snapshot
            self.__init__(self.path, in_memory=self.in_memory)  # type: ignore[misc]
        if self._reader is not None:
            self._reader.close()
        if self.in_memory:
            for path in self._data_paths:
                warm(path)
        reader: DataReader
        if self.backend.raw_ranges:  # declared by the backend: the core maps the files itself
            ranges = MmapRangeReader(self._data_paths)
            reader, self._maps = ranges, ranges.maps
        else:
            reader, self._maps = (
                self.backend.open_reader(self._data_paths, self.index.key_bytes),
                None,
            )
        self._reader = reader
        self._pid = os.getpid()
        return reader

    def _fetch(self, file_id: int, offset: int, length: int, i: int) -> bytes:
        with self._real_paths_in_errors():
            return self._fetch_pinned(file_id, offset, length, i)

    def _fetch_pinned(self, file_id: int, offset: int, length: int, i: int) -> bytes:
        maps = self._maps
        if maps is not None:  # raw byte ranges: slice the map, nothing else (the hot path)
            try:
                data = maps[file_id][offset : offset + length]
            except IndexError:
                raise self._bad_location(i, file_id) from None
            if len(data) == length:
                return data  # type: ignore[no-any-return]
        reader = self._reader
        if reader is None or self._pid != os.getpid():
            reader = self._open_reader()
            if self._maps is not None:
                return self._fetch_pinned(file_id, offset, length, i)
        if file_id >= len(self._data_paths):
            raise self._bad_location(i, file_id)
        return reader.read(file_id, offset, length, i)

    def _bad_location(self, i: int, file_id: int) -> PackError:
        return PackError(
            f"{self.path}: index entry {i} names data file {file_id}, but the pack has "
            f"{len(self._data_paths)}; the index is damaged, run `pack verify`"
        )

    def read(self, i: int) -> bytes:
        """The stored bytes of sample ``i``: the fastest way to get a payload."""
        if type(i) is not int:
            i = operator.index(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"sample {i} out of range for a pack of {self._n}")
        hot = self._hot or self._hot_index()
        f, off, n = hot.locations[i].tolist()
        maps = self._maps
        if maps is not None and f < len(maps):  # raw byte ranges: one slice of a map
            data = maps[f][off : off + n]
            if len(data) == n:
                return data  # type: ignore[no-any-return]
        return self._fetch(f, off, n, i)

    def read_many(self, indices: Sequence[int] | np.ndarray) -> list[bytes]:
        """The stored bytes of each sample in ``indices``, in that order (on a remote pack:
        neighbouring ranges fetched together, see :mod:`packer.read.remote`)."""
        return [self.read(i) for i in np.asarray(indices, dtype=np.int64).ravel().tolist()]

    def __getitem__(self, i: int) -> Sample:
        # Index columns are read through memoryviews and the Sample is built with tuple.__new__
        # (NamedTuple's own __new__ is Python code): the public random-access hot path.
        data = self.read(i)  # also checks i
        i = operator.index(i)
        if i < 0:
            i += self._n
        hot = self._hot or self._hot_index()
        key_offsets = hot.key_offsets
        key = hot.keys[key_offsets[i] : key_offsets[i + 1]].decode("utf-8", "surrogateescape")
        try:
            ext = self._extensions[hot.extension[i]]
        except IndexError:
            raise PackError(
                f"{self.path}: sample {i} has an unknown extension id; run `pack verify`"
            ) from None
        return _new_tuple(Sample, (key, hot.labels[i], data, ext))

    def array(self, i: int) -> np.ndarray:
        """Sample ``i`` of a pixel pack (``--size`` without ``--reencode``) as an H x W x C uint8
        array, with no image decoding; read-only, it shares the bytes just read."""
        if self.shape is None:
            raise PackError(
                f"{self.path}: holds encoded images, not pixels; decode pack.read(i) instead"
            )
        return np.frombuffer(self.read(i), dtype=np.uint8).reshape(self.shape)

    def get(self, key: str) -> Sample:
        """The sample with this key (``class/.../name`` without extension); KeyError if absent."""
        return self[self.index_of(key)]

    def __iter__(self) -> Iterator[Sample]:
        """All samples in pack order. Index rows, keys and payloads are pulled a block at a time and
        Samples are assembled by ``map``/``zip`` in C: no Python-level loop runs per sample except
        the key decoding."""
        exts = self._extensions
        ext_ids = self.index.extension
        for start, data, labels in self._blocks():
            stop = start + len(labels)
            keys = self.index.key_list(start, stop)
            try:
                names = [exts[e] for e in ext_ids[start:stop].tolist()]
            except IndexError:
                raise PackError(
                    f"{self.path}: a sample has an unknown extension id; run `pack verify`"
                ) from None
            yield from map(_make_sample, zip(keys, labels, data, names, strict=True))

    def iter_raw(self) -> Iterator[tuple[bytes, int]]:
        """``(stored bytes, label)`` of every sample in pack order: the fastest sequential pass
        (no key decoding, no Sample object)."""
        for _, data, labels in self._blocks():
            yield from zip(data, labels, strict=True)

    def _blocks(self) -> Iterator[tuple[int, Iterator[bytes], list[int]]]:
        """(start, payload iterator, labels) per block of index rows. A block is split where its
        rows change data file (a pack of small shards has a boundary in most blocks); each run
        that lies in one memory-mapped file, and inside it, is plain slices with no per-sample
        checks, the rest goes through the checked per-sample path."""
        all_locations, all_labels = self.index.locations, self.index.labels
        step = self.block_rows
        for start in range(0, self._n, step):
            stop = min(start + step, self._n)
            labels = all_labels[start:stop].tolist()
            rows = np.asarray(all_locations[start:stop])
            if self._reader is None or self._pid != os.getpid():
                self._open_reader()  # and the maps, for raw-range backends
            files = rows[:, 0]
            cuts = [0, *(np.flatnonzero(files[1:] != files[:-1]) + 1).tolist(), len(rows)]
            runs = [self._run(rows[a:b], start + a) for a, b in itertools.pairwise(cuts)]
            yield start, itertools.chain.from_iterable(runs), labels

    def _run(self, rows: np.ndarray, start: int) -> Iterator[bytes]:
        """Payloads of index rows that all name one data file (lazily)."""
        maps = self._maps
        file = int(rows[0, 0])
        ends = rows[:, 1] + rows[:, 2]
        if maps is not None and file < len(maps) and int(ends.max()) <= len(maps[file]):
            return map(maps[file].__getitem__, map(slice, rows[:, 1].tolist(), ends.tolist()))
        return (self._fetch(f, off, n, start + j) for j, (f, off, n) in enumerate(rows.tolist()))

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = None
        self._maps = None
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1

    def __del__(self) -> None:
        # Readers may hold process-wide resources (LMDB environments are shared per process);
        # give them back when a Pack is dropped without close().
        with contextlib.suppress(Exception):
            self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # Only the path crosses a pickle: maps and handles are per process, reopened lazily.
        return {"path": str(self.path), "in_memory": self.in_memory}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], in_memory=state.get("in_memory", False))  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"Pack({str(self.path)!r}, backend={self.backend.name!r}, samples={self._n})"


_new_tuple = tuple.__new__
_make_sample = functools.partial(_new_tuple, Sample)  # Sample from a 4-tuple, in C


class _HotIndex:
    """The index columns a read touches, as the fastest accessors Python has: ``memoryview``
    element access returns a Python int in ~40 ns, about 3x faster than indexing an ndarray."""

    def __init__(self, index: Index) -> None:
        self.locations = index.locations  # rows are read with one .tolist()
        self.labels = _fast(index.labels)
        self.extension = _fast(index.extension)
        self.key_offsets = _fast(index.key_offsets)
        self.keys = index.keys_blob()


def _fast(arr: np.ndarray) -> Any:
    view = memoryview(arr)  # type: ignore[arg-type]  # ndarray implements the buffer protocol
    # memoryview only indexes native single-character formats (little-endian hosts: all of ours)
    return view if len(view.format) == 1 else arr
