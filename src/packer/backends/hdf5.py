"""HDF5: one ``.h5`` file per shard, readable with plain h5py.

Layout of each file in bytes mode (the default)::

    /data     uint8  (total_bytes,)  contiguous: every sample's stored bytes back to back
    /offsets  uint64 (n + 1,)        sample j is data[offsets[j]:offsets[j + 1]]
    /labels   int32  (n,)
    /keys     vlen bytes (n,)        sample keys, UTF-8
    attrs: packer_format = "packer-hdf5-v1"

``/data`` is a *contiguous* dataset, so each sample is a plain byte range of the file: packer reads
it straight from a memory map (no HDF5 call per sample), while h5py users slice ``/data`` with
``/offsets``. That beats a vlen-uint8 dataset by a wide margin on random reads: every vlen element
is a separate heap object that HDF5 must look up. Payloads are staged in a side file while the
shard is written (the dataset's size must be known to allocate it contiguously), then copied in.

Pixel mode (``--size HxW --mode RGB|L``) stores ``/images`` uint8 (n, H, W, C) instead of
``/data`` + ``/offsets``: contiguous and memory-mapped like ``/data`` by default, or chunked one image
per chunk with ``-o compression=gzip|lzf`` (then read through h5py).
"""

from __future__ import annotations

import dataclasses
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from packer.backends.base import Backend, BackendOptions, DataReader, KeyOf, ShardWriter
from packer.errors import PackError, UsageError

if TYPE_CHECKING:
    import h5py

# h5py is imported only to write files or read compressed pixels: opening a pack and reading its
# contiguous byte ranges must not pay h5py's import time.

_COPY_BLOCK = 16 << 20
_FORMAT_ATTR = "packer-hdf5-v1"


@dataclasses.dataclass(frozen=True)
class Hdf5Options(BackendOptions):
    """Args:
    compression: pixel packs only: ``none`` (contiguous, memory-mapped), ``gzip`` or ``lzf``
        (chunked one image per chunk). Encoded bytes are never recompressed.
    level: gzip level 0-9.
    """

    compression: str = "none"
    level: int = 4

    def __post_init__(self) -> None:
        if self.compression not in ("none", "gzip", "lzf"):
            raise UsageError(
                f"hdf5 option compression={self.compression!r} must be none, gzip or lzf"
            )
        if not 0 <= self.level <= 9:
            raise UsageError(f"hdf5 option level={self.level} must be between 0 and 9")


def _write_metadata(f: h5py.File, labels: array[int], keys: list[bytes]) -> None:
    """``/labels`` and ``/keys`` (and the format attribute, if not set yet)."""
    import h5py

    if "packer_format" not in f.attrs:
        f.attrs["packer_format"] = _FORMAT_ATTR
    # track_times=False: HDF5 would otherwise stamp each object and break reproducibility.
    f.create_dataset("labels", data=np.frombuffer(labels, dtype=np.int32), track_times=False)
    key_array = np.empty(len(keys), dtype=object)
    key_array[:] = keys
    f.create_dataset("keys", data=key_array, dtype=h5py.vlen_dtype(bytes), track_times=False)


def _copy_into(dataset: Any, staged: Path, row_bytes: int = 1) -> None:
    """Fill a contiguous dataset from a staged raw file, block by block (flat view of its bytes)."""
    with open(staged, "rb") as src:
        position = 0
        block = max(1, _COPY_BLOCK // row_bytes) * row_bytes
        while chunk := src.read(block):
            arr = np.frombuffer(chunk, dtype=np.uint8)
            if dataset.ndim == 1:
                dataset[position : position + len(arr)] = arr
                position += len(arr)
            else:
                rows = len(arr) // row_bytes
                dataset[position : position + rows] = arr.reshape(rows, *dataset.shape[1:])
                position += rows


class Hdf5Writer(ShardWriter):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._staged = path.with_name(path.name + ".payload")
        self.scratch.append(self._staged)
        self._file = open(self._staged, "wb")  # noqa: SIM115 - closed in complete() or release()
        self._offsets = array("Q", [0])
        self._labels = array("i")
        self._keys: list[bytes] = []
        self._final: np.ndarray | None = None

    def add(self, key: str, ext: str, label: int, data: bytes) -> tuple[int, int]:
        offset = self._offsets[-1]
        self._file.write(data)
        self._offsets.append(offset + len(data))
        self._labels.append(label)
        self._keys.append(key.encode("utf-8", "surrogateescape"))
        return offset, len(data)

    def complete(self) -> None:
        self._file.close()
        import h5py

        offsets = np.frombuffer(self._offsets, dtype=np.uint64)
        total = int(offsets[-1])
        with h5py.File(self.path, "w", libver="earliest") as f:
            f.attrs["packer_format"] = _FORMAT_ATTR  # first: the object order shapes the bytes
            data = f.create_dataset("data", shape=(total,), dtype=np.uint8, track_times=False)
            _copy_into(data, self._staged)
            f.create_dataset("offsets", data=offsets, track_times=False)
            _write_metadata(f, self._labels, self._keys)
            base = data.id.get_offset() if total else 0
        self._staged.unlink()
        final = np.empty((len(self._keys), 2), dtype=np.uint64)
        final[:, 0] = offsets[:-1] + np.uint64(base or 0)
        final[:, 1] = np.diff(offsets)
        self._final = final

    def release(self) -> None:
        self._file.close()  # no HDF5 file is built from a partial shard

    def final_locations(self) -> np.ndarray | None:
        return self._final


class Hdf5PixelWriter(ShardWriter):
    """``/images`` (n, H, W, C): contiguous from a staged file, or chunked+compressed as it goes."""

    def __init__(self, path: Path, shape: tuple[int, int, int], options: Hdf5Options) -> None:
        import h5py

        super().__init__(path)
        self._shape = shape
        self._row = shape[0] * shape[1] * shape[2]
        self._labels = array("i")
        self._keys: list[bytes] = []
        self._final: np.ndarray | None = None
        self._compression = options.compression
        if self._compression == "none":
            self._staged: Path | None = path.with_name(path.name + ".payload")
            self.scratch.append(self._staged)
            self._file: Any = open(self._staged, "wb")  # noqa: SIM115 - closed in complete()
        else:
            self._staged = None
            self._file = h5py.File(path, "w", libver="earliest")
            self._images = self._file.create_dataset(
                "images",
                shape=(0, *shape),
                maxshape=(None, *shape),
                chunks=(1, *shape),
                dtype=np.uint8,
                compression=self._compression,
                compression_opts=options.level if self._compression == "gzip" else None,
                track_times=False,
            )
            self._rows: list[bytes] = []

    def add(self, key: str, ext: str, label: int, data: bytes) -> tuple[int, int]:
        if len(data) != self._row:
            raise ValueError(f"{key}: {len(data)} pixel bytes, expected {self._row}")
        row = len(self._keys)
        self._labels.append(label)
        self._keys.append(key.encode("utf-8", "surrogateescape"))
        if self._staged is not None:
            self._file.write(data)
        else:
            self._rows.append(data)
            if len(self._rows) >= 256:
                self._flush_rows()
        return row, self._row

    def _flush_rows(self) -> None:
        if self._rows:
            start = self._images.shape[0]
            self._images.resize(start + len(self._rows), axis=0)
            block = np.frombuffer(b"".join(self._rows), dtype=np.uint8).reshape(-1, *self._shape)
            self._images[start:] = block
            self._rows = []

    def complete(self) -> None:
        import h5py

        n = len(self._keys)
        if self._staged is None:
            self._flush_rows()
            _write_metadata(self._file, self._labels, self._keys)
            self._file.close()
            return
        self._file.close()
        with h5py.File(self.path, "w", libver="earliest") as f:
            images = f.create_dataset(
                "images", shape=(n, *self._shape), dtype=np.uint8, track_times=False
            )
            _copy_into(images, self._staged, self._row)
            _write_metadata(f, self._labels, self._keys)
            base = images.id.get_offset() if n else 0
        self._staged.unlink()
        final = np.empty((n, 2), dtype=np.uint64)
        final[:, 0] = np.uint64(base or 0) + np.arange(n, dtype=np.uint64) * np.uint64(self._row)
        final[:, 1] = self._row
        self._final = final

    def release(self) -> None:
        self._file.close()

    def final_locations(self) -> np.ndarray | None:
        return self._final


class Hdf5ChunkReader(DataReader):
    """Reads compressed pixel rows through h5py; files open on first use, in this process only."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.files: dict[int, h5py.File] = {}

    def read(self, file_id: int, offset: int, length: int, index: int) -> bytes:
        f = self.files.get(file_id)
        if f is None:
            import h5py

            try:
                f = self.files[file_id] = h5py.File(self.paths[file_id], "r")
            except OSError as exc:
                raise PackError(
                    f"{self.paths[file_id]}: not a readable HDF5 file ({exc}); run `pack verify`"
                ) from None
        images = f["images"]
        if not 0 <= offset < images.shape[0]:
            raise PackError(
                f"{self.paths[file_id]}: sample {index} is past the last image; run `pack verify`"
            )
        data: bytes = images[offset].tobytes()
        if len(data) != length:
            raise PackError(
                f"{self.paths[file_id]}: sample {index} has the wrong size; run `pack verify`"
            )
        return data

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files = {}


class Hdf5Backend(Backend[Hdf5Options]):
    name = "hdf5"
    summary = "HDF5 per shard: contiguous /data + /offsets (or /images pixels), /labels, /keys"
    suffix = "h5"
    options_class = Hdf5Options
    stores_pixels = True

    @property
    def raw_ranges(self) -> bool:
        return self.pixel_shape is None or self.options.compression == "none"

    def open_writer(self, path: Path) -> ShardWriter:
        if self.pixel_shape is not None:
            return Hdf5PixelWriter(path, self.pixel_shape, self.options)
        return Hdf5Writer(path)

    def open_reader(self, paths: Sequence[Path], key_of: KeyOf) -> DataReader:
        return Hdf5ChunkReader(paths)  # contiguous layouts are raw ranges, read by the core
