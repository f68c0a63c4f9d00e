"""The per-sample index of a pack: ``.npy`` arrays and a key blob, memory-mapped on open.

Layout (see docs/format.md)::

    index/labels.npy       int32   (N,)    label of each sample
    index/locations.npy    uint*   (N, 3)  data file id, offset, length (backend-defined units)
    index/crc32.npy        uint32  (N,)    CRC-32 of each sample's payload
    index/extension.npy    uint16  (N,)    position in manifest["extensions"]
    index/keys.bin         bytes           keys, UTF-8 (surrogateescape), concatenated in sample order
    index/key_offsets.npy  uint*   (N+1,)  key i is keys.bin[key_offsets[i]:key_offsets[i+1]]
    index/key_order.npy    uint*   (N,)    sample ids sorted by key bytes: key -> id by bisection

Every array is a plain little-endian ``.npy`` memory-mapped on open (``allow_pickle=False``), so
opening a pack costs the same for 1,000 or 1,000,000 samples. ``uint*``: format version 1 always
wrote uint64; version 2 writes uint32 when every value fits (for locations: every value and every
offset + length), as the manifest's ``index.dtypes`` records, which saves 20 of 50 bytes a sample.
"""

from __future__ import annotations

import mmap
import os
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from packer._util.columns import NpyFile, read_npy_header
from packer._util.files import raw_to_npy
from packer._util.keysort import key_order
from packer.errors import PackError
from packer.format.dtypes import INDEX_ARRAYS, V1_DTYPES, narrowest
from packer.format.manifest import Manifest

INDEX_DIR = "index"


KEYS_FILE = "keys.bin"


INDEX_FILES = [f"{INDEX_DIR}/{name}.npy" for name in INDEX_ARRAYS] + [f"{INDEX_DIR}/{KEYS_FILE}"]


def encode_key(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def decode_key(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class IndexWriter:
    """Streams index rows to disk shard by shard; memory stays O(one shard) whatever N is.

    Rows are appended to raw files, then ``finish`` prepends ``.npy`` headers (the count is only
    known at the end when files were skipped) and sorts the key order.
    """

    def __init__(self, root: Path) -> None:
        self.dir = root / INDEX_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self._raw: dict[str, BinaryIO] = {
            name: open(self.dir / f"{name}.raw", "wb")  # noqa: SIM115 - closed in finish()
            for name in INDEX_ARRAYS
            if name not in ("key_order",)
        }
        self._keys = open(self.dir / KEYS_FILE, "wb")  # noqa: SIM115 - closed in finish()
        self._key_end = 0
        self._widest_key = 0
        self._location_max = 0  # the largest value or offset + length seen in a location row
        #: the dtype of each array written, known once :meth:`finish` has run
        self.dtypes = dict(V1_DTYPES)
        self._raw["key_offsets"].write(np.zeros(1, "<u8").tobytes())
        self.count = 0

    def append(
        self,
        labels: np.ndarray,
        locations: np.ndarray,
        crc32: np.ndarray,
        extension: np.ndarray,
        key_blob: bytes,
        key_lengths: np.ndarray,
    ) -> None:
        n = len(key_lengths)
        columns = {"labels": labels, "locations": locations, "crc32": crc32, "extension": extension}
        for name, arr in columns.items():
            dtype, tail, _ = INDEX_ARRAYS[name]
            arr = np.ascontiguousarray(arr, dtype=dtype)
            assert arr.shape == (n, *tail), (name, arr.shape)
            self._raw[name].write(arr.tobytes())
        if n:
            ends = locations[:, 1].astype("<u8") + locations[:, 2].astype("<u8")
            self._location_max = max(self._location_max, int(locations.max()), int(ends.max()))
        lengths = np.asarray(key_lengths, dtype="<u8")
        if int(lengths.sum()) != len(key_blob):
            raise ValueError("key lengths do not add up to the key blob")
        self._raw["key_offsets"].write(
            (self._key_end + np.cumsum(lengths, dtype="<u8")).astype("<u8").tobytes()
        )
        self._keys.write(key_blob)
        self._key_end += len(key_blob)
        self._widest_key = max(self._widest_key, int(lengths.max(initial=0)))
        self.count += n

    def finish(self, *, unique_keys: bool = False, key_order: bool = True) -> None:
        """Write the ``.npy`` headers and the key order (unless not ``key_order``); with
        ``unique_keys``, a key given to two samples is an error (a folder scan cannot produce one;
        samples from memory can)."""
        for f in self._raw.values():
            f.close()
        self._keys.close()
        self.dtypes.update(
            locations=narrowest(self._location_max),
            key_offsets=narrowest(self._key_end),
            key_order=narrowest(max(self.count - 1, 0)),
        )
        for name, (stored, tail, extra) in INDEX_ARRAYS.items():
            if name == "key_order":
                continue
            raw_to_npy(
                self.dir / f"{name}.raw",
                self.dir / f"{name}.npy",
                self.dtypes[name],
                (self.count + extra, *tail),
                source=stored,
            )
        if key_order:
            self._write_key_order(unique_keys)

    def _write_key_order(self, unique: bool) -> None:
        """``key_order.npy`` by an external merge sort (:mod:`packer._util.keysort`): memory stays
        bounded however many keys there are."""
        offsets = NpyFile(self.dir / "key_offsets.npy")
        raw = self.dir / "key_order.raw"
        dtype = self.dtypes["key_order"]
        with open(self.dir / KEYS_FILE, "rb") as keys, open(raw, "wb") as out:

            def key_bytes(x: int, y: int) -> bytes:
                return os.pread(keys.fileno(), y - x, x)

            key_order(
                key_bytes,
                lambda a, b: offsets.rows(a, b + 1),
                self.count,
                self._widest_key,
                self.dir / "key_order.runs",
                lambda ids: out.write(ids.astype(dtype).tobytes()),
                unique=unique,
            )
        raw_to_npy(raw, self.dir / "key_order.npy", dtype, (self.count,))

    def abort(self) -> None:
        for f in [*self._raw.values(), self._keys]:
            f.close()


def map_npy(path: Path, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Memory-map a ``.npy`` file as a plain read-only ndarray, checking it first.

    Faster than ``np.load(mmap_mode="r")`` (no ``np.memmap`` subclass, whose element access is ~10x
    slower), and strict: the header is parsed without ``eval`` or pickle, object dtypes are refused,
    and the dtype, shape and file size must be exactly what the manifest implies.
    """
    try:
        with open(path, "rb") as f:
            found_shape, fortran, found_dtype = read_npy_header(f)
            if found_dtype != np.dtype(dtype) or tuple(found_shape) != shape or fortran:
                raise PackError(
                    f"{path}: expected {dtype} of shape {shape}, found {found_dtype} "
                    f"{tuple(found_shape)}; the index does not match the manifest, re-create the pack"
                )
            offset = f.tell()
            count = int(np.prod(shape))
            if os.fstat(f.fileno()).st_size < offset + count * found_dtype.itemsize:
                raise ValueError("the file is truncated")
            if count == 0:
                return np.empty(shape, dtype=found_dtype)
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise PackError(f"{path}: missing; the pack is incomplete, re-create it") from None
    except PackError:
        raise
    except (OSError, ValueError) as exc:
        raise PackError(f"{path}: not a readable .npy ({exc}); re-create the pack") from None
    return np.frombuffer(mapped, dtype=found_dtype, count=count, offset=offset).reshape(shape)


class Index:
    """The memory-mapped per-sample index of a pack. Mapping reads nothing but the ``.npy`` headers,
    so a pack opens in about a millisecond however many samples it has. Each array is mapped and
    checked against the manifest on first use (``load_all`` maps them all at once).
    """

    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root = root
        self._n = manifest.num_samples
        self._dtypes = manifest.index_dtypes
        self._arrays: dict[str, np.ndarray] = {}
        self._keys_map: mmap.mmap | bytes | None = None

    def array(self, name: str) -> np.ndarray:
        arr = self._arrays.get(name)
        if arr is None:
            _, tail, extra = INDEX_ARRAYS[name]
            arr = map_npy(
                self.root / INDEX_DIR / f"{name}.npy", self._dtypes[name], (self._n + extra, *tail)
            )
            self._arrays[name] = arr
        return arr

    def load_all(self) -> None:
        """Map and check every index file now (verify, and callers that want errors up front)."""
        for name in INDEX_ARRAYS:
            self.array(name)
        self.keys_blob()

    @property
    def labels(self) -> np.ndarray:
        return self.array("labels")

    @property
    def locations(self) -> np.ndarray:
        return self.array("locations")

    @property
    def crc32(self) -> np.ndarray:
        return self.array("crc32")

    @property
    def extension(self) -> np.ndarray:
        return self.array("extension")

    @property
    def key_offsets(self) -> np.ndarray:
        return self.array("key_offsets")

    @property
    def key_order(self) -> np.ndarray:
        return self.array("key_order")

    def keys_blob(self) -> mmap.mmap | bytes:
        if self._keys_map is None:
            keys_path = self.root / INDEX_DIR / KEYS_FILE
            try:
                with open(keys_path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    blob = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            except OSError as exc:
                raise PackError(
                    f"{keys_path}: cannot open ({exc.strerror}); re-create the pack"
                ) from None
            if self._n and int(self.key_offsets[-1]) != size:
                raise PackError(
                    f"{keys_path}: size {size} does not match the key index; re-create the pack"
                )
            self._keys_map = blob
        return self._keys_map

    def key_bytes(self, i: int) -> bytes:
        a, b = self.key_offsets[i : i + 2].tolist()
        return self.keys_blob()[a:b]

    def key(self, i: int) -> str:
        return decode_key(self.key_bytes(i))

    def find(self, key: str) -> int | None:
        """Sample id of ``key`` in O(log n), without building a dict of every key."""
        target = encode_key(key)
        keys = _SortedKeys(self)
        pos = bisect_left(keys, target)
        if pos < self._n and keys[pos] == target:
            return int(self.key_order[pos])
        return None

    def key_list(self, start: int, stop: int) -> list[str]:
        """Keys of samples ``start..stop`` from one slice of the key blob: for ASCII keys (the
        common case) one decode and C-level slicing, no Python loop per key."""
        offsets = self.key_offsets[start : stop + 1]
        chunk = self.keys_blob()[int(offsets[0]) : int(offsets[-1])]
        rel = (offsets - offsets[0]).tolist()
        starts, ends = rel[:-1], rel[1:]
        if chunk.isascii():  # byte offsets are character offsets
            return list(map(chunk.decode("ascii").__getitem__, map(slice, starts, ends)))
        return [decode_key(chunk[a:b]) for a, b in zip(starts, ends, strict=True)]

    def iter_keys(self) -> Iterator[str]:
        for start in range(0, self._n, 65536):
            yield from self.key_list(start, min(self._n, start + 65536))

    def close(self) -> None:
        # Arrays may still be referenced by callers (pack.labels); they keep their maps alive.
        self._arrays = {}
        self._keys_map = None


class _SortedKeys:
    """A read-only sequence view of keys in sorted order, for ``bisect``."""

    def __init__(self, index: Index) -> None:
        self.index = index

    def __len__(self) -> int:
        return len(self.index.key_order)

    def __getitem__(self, pos: int) -> bytes:
        i = int(self.index.key_order[pos])
        if i >= len(self):
            raise PackError(
                f"{self.index.root / INDEX_DIR}/key_order.npy: entry {pos} names sample {i} of "
                f"{len(self)}; the index is damaged, run `pack verify`"
            )
        return self.index.key_bytes(i)
