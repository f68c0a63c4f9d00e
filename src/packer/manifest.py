"""The pack format: ``manifest.json`` plus the per-sample index, one spec for every backend.

A pack is a directory::

    manifest.json          versioned description (backend, classes, data files + sha256, ...)
    index/labels.npy       int32   (N,)    label of each sample
    index/locations.npy    uint64  (N, 3)  data file id, offset, length (backend-defined units)
    index/crc32.npy        uint32  (N,)    CRC-32 of each sample's payload
    index/extension.npy    uint16  (N,)    position in manifest["extensions"]
    index/keys.bin         bytes           keys, UTF-8 (surrogateescape), concatenated in sample order
    index/key_offsets.npy  uint64  (N+1,)  key i is keys.bin[key_offsets[i]:key_offsets[i+1]]
    index/key_order.npy    uint64  (N,)    sample ids sorted by key bytes: key -> id by bisection
    <data files>           named in manifest["data_files"], written by the backend

Every array is a plain little-endian ``.npy`` memory-mapped on open (``allow_pickle=False``), so
opening a pack costs the same for 1,000 or 1,000,000 samples. JSON is written with sorted keys and
no timestamps: the same input and options give byte-identical packs.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from packer.errors import PackError

FORMAT_NAME = "packer"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
INDEX_DIR = "index"
KEYS_FILE = "keys.bin"

#: name -> (dtype, trailing shape, extra rows beyond N)
INDEX_ARRAYS: dict[str, tuple[str, tuple[int, ...], int]] = {
    "labels": ("<i4", (), 0),
    "locations": ("<u8", (3,), 0),
    "crc32": ("<u4", (), 0),
    "extension": ("<u2", (), 0),
    "key_offsets": ("<u8", (), 1),
    "key_order": ("<u8", (), 0),
}
INDEX_FILES = [f"{INDEX_DIR}/{name}.npy" for name in INDEX_ARRAYS] + [f"{INDEX_DIR}/{KEYS_FILE}"]


def encode_key(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def decode_key(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class DataFile:
    """One data file of a pack, as recorded in the manifest."""

    name: str
    num_samples: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_samples": self.num_samples,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }


@dataclass
class Manifest:
    """The parsed ``manifest.json``. See docs/format.md for every field."""

    backend: str
    options: dict[str, Any]
    classes: list[str]
    class_counts: list[int]
    num_samples: int
    payload_bytes: int
    data_files: list[DataFile]
    extensions: list[str]
    index_sha256: dict[str, str]
    source: dict[str, Any] = field(default_factory=dict)
    created_by: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    transform: dict[str, Any] | None = None
    sample_shape: list[int] | None = None
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "backend": {"name": self.backend, "options": self.options},
            "classes": self.classes,
            "class_counts": self.class_counts,
            "num_samples": self.num_samples,
            "payload_bytes": self.payload_bytes,
            "data_files": [d.to_dict() for d in self.data_files],
            "extensions": self.extensions,
            "index": {"sha256": self.index_sha256},
            "source": self.source,
            "created_by": self.created_by,
            "skipped": self.skipped,
            "ignored": self.ignored,
            "warnings": self.warnings,
            "transform": self.transform,
            "sample_shape": self.sample_shape,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2) + "\n"

    def write(self, root: Path) -> None:
        write_file_synced(root / MANIFEST_NAME, self.to_json().encode())

    @classmethod
    def read(cls, root: Path) -> Manifest:
        path = root / MANIFEST_NAME
        if not root.is_dir():
            raise PackError(
                f"{root}: not a pack (no such folder); pass the folder `pack convert` wrote"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PackError(f"{path}: missing; {root} is not a pack or is incomplete") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PackError(f"{path}: cannot read ({exc}); re-create the pack") from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PackError(f"{path}: not valid JSON ({exc}); re-create the pack") from None
        return cls.from_dict(raw, path)

    @classmethod
    def from_dict(cls, raw: Any, path: Path | str = MANIFEST_NAME) -> Manifest:
        """Validate every field, so damaged manifests fail here with a clear message, not later."""
        v = _Validator(path)
        obj = v.mapping(raw, "manifest")
        if obj.get("format") != FORMAT_NAME:
            raise PackError(f"{path}: not a packer manifest (format={obj.get('format')!r})")
        version = v.integer(obj, "format_version")
        if version != FORMAT_VERSION:
            raise PackError(
                f"{path}: pack format version {version} is not supported by this packer "
                f"(reads version {FORMAT_VERSION}); upgrade packer or re-create the pack"
            )
        backend = v.mapping(obj.get("backend"), "backend")
        n = v.integer(obj, "num_samples")
        data_files = []
        for i, item in enumerate(v.sequence(obj.get("data_files"), "data_files")):
            d = v.mapping(item, f"data_files[{i}]")
            name = v.string(d, "name")
            if "/" in name or "\\" in name or name in ("", ".", "..") or name.startswith("."):
                raise PackError(f"{path}: data file name {name!r} is not a plain file name")
            data_files.append(
                DataFile(
                    name, v.integer(d, "num_samples"), v.integer(d, "bytes"), v.string(d, "sha256")
                )
            )
        if not data_files:
            raise PackError(f"{path}: lists no data files")
        if sum(d.num_samples for d in data_files) != n:
            raise PackError(f"{path}: data file sample counts do not add up to num_samples={n}")
        classes = [
            v.string_value(c, "classes[]") for c in v.sequence(obj.get("classes"), "classes")
        ]
        counts = [
            v.int_value(c, "class_counts[]")
            for c in v.sequence(obj.get("class_counts"), "class_counts")
        ]
        if len(counts) != len(classes) or sum(counts) != n:
            raise PackError(f"{path}: class_counts do not match classes / num_samples")
        transform = obj.get("transform")
        if transform is not None:
            transform = dict(v.mapping(transform, "transform"))
        shape = obj.get("sample_shape")
        if shape is not None:
            shape = [v.int_value(d, "sample_shape[]") for d in v.sequence(shape, "sample_shape")]
            if len(shape) != 3 or 0 in shape:
                raise PackError(f"{path}: sample_shape must be [height, width, channels]")
        index = v.mapping(obj.get("index"), "index")
        sha = v.mapping(index.get("sha256"), "index.sha256")
        return cls(
            backend=v.string(backend, "name"),
            options=dict(v.mapping(backend.get("options", {}), "backend.options")),
            classes=classes,
            class_counts=counts,
            num_samples=n,
            payload_bytes=v.integer(obj, "payload_bytes"),
            data_files=data_files,
            extensions=[
                v.string_value(e, "extensions[]")
                for e in v.sequence(obj.get("extensions"), "extensions")
            ],
            index_sha256={str(k): v.string_value(s, "index.sha256") for k, s in sha.items()},
            source=dict(v.mapping(obj.get("source", {}), "source")),
            created_by=dict(v.mapping(obj.get("created_by", {}), "created_by")),
            skipped=[
                dict(v.mapping(s, "skipped[]"))
                for s in v.sequence(obj.get("skipped", []), "skipped")
            ],
            ignored=[
                dict(v.mapping(s, "ignored[]"))
                for s in v.sequence(obj.get("ignored", []), "ignored")
            ],
            warnings=[
                dict(v.mapping(s, "warnings[]"))
                for s in v.sequence(obj.get("warnings", []), "warnings")
            ],
            transform=transform,
            sample_shape=shape,
            format_version=version,
        )


class _Validator:
    """Type checks that name the manifest and the field, for hostile or hand-edited manifests."""

    def __init__(self, path: Path | str) -> None:
        self.path = path

    def fail(self, what: str, expected: str) -> PackError:
        return PackError(f"{self.path}: field {what} must be {expected}; the manifest is damaged")

    def mapping(self, value: Any, what: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(what, "an object")
        return value

    def sequence(self, value: Any, what: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(what, "a list")
        return value

    def int_value(self, value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(what, "a non-negative integer")
        return value

    def integer(self, obj: Mapping[str, Any], key: str) -> int:
        return self.int_value(obj.get(key), key)

    def string_value(self, value: Any, what: str) -> str:
        if not isinstance(value, str):
            raise self.fail(what, "a string")
        return value

    def string(self, obj: Mapping[str, Any], key: str) -> str:
        return self.string_value(obj.get(key), key)


def write_file_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def tree_bytes(path: Path) -> int:
    """Apparent size of every file under ``path`` (a pack folder)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def sha256_file(path: Path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


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
        lengths = np.asarray(key_lengths, dtype="<u8")
        if int(lengths.sum()) != len(key_blob):
            raise ValueError("key lengths do not add up to the key blob")
        self._raw["key_offsets"].write(
            (self._key_end + np.cumsum(lengths, dtype="<u8")).astype("<u8").tobytes()
        )
        self._keys.write(key_blob)
        self._key_end += len(key_blob)
        self.count += n

    def finish(self) -> None:
        for f in self._raw.values():
            f.close()
        self._keys.close()
        for name, (dtype, tail, extra) in INDEX_ARRAYS.items():
            if name == "key_order":
                continue
            raw = self.dir / f"{name}.raw"
            with open(self.dir / f"{name}.npy", "wb") as out, open(raw, "rb") as src:
                header = {
                    "descr": dtype,
                    "fortran_order": False,
                    "shape": (self.count + extra, *tail),
                }
                np.lib.format.write_array_header_1_0(out, header)
                shutil.copyfileobj(src, out, 1 << 20)
            raw.unlink()
        np.save(self.dir / "key_order.npy", self._sorted_key_order(), allow_pickle=False)

    def _sorted_key_order(self) -> np.ndarray:
        """Sample ids in key order: keys are laid out as fixed-width byte strings (zero-padded; keys
        never contain NUL) and sorted by numpy's memcmp in C. Rows are filled block by block with
        vectorised scatters, so no Python object is made per key."""
        offsets = map_npy(self.dir / "key_offsets.npy", "<u8", (self.count + 1,)).astype(np.int64)
        blob = np.fromfile(self.dir / KEYS_FILE, dtype=np.uint8)
        lengths = np.diff(offsets)
        width = max(1, int(lengths.max()) if len(lengths) else 1)
        fixed = np.zeros((self.count, width), dtype=np.uint8)
        block = 65536
        for a in range(0, self.count, block):
            b = min(self.count, a + block)
            lens = lengths[a:b]
            rows = np.repeat(np.arange(a, b), lens)
            cols = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
            fixed[rows, cols] = blob[offsets[a] : offsets[b]]
        return np.argsort(fixed.view(f"S{width}").ravel(), kind="stable").astype("<u8")

    def abort(self) -> None:
        for f in [*self._raw.values(), self._keys]:
            f.close()


def map_npy(path: Path, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Memory-map a ``.npy`` file as a plain read-only ndarray, checking it first.

    Faster than ``np.load(mmap_mode="r")`` (no ``np.memmap`` subclass, whose element access is ~10x
    slower), and strict: the header is parsed without ``eval`` or pickle, object dtypes are refused,
    and the dtype, shape and file size must be exactly what the manifest implies.
    """
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                found_shape, fortran, found_dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                found_shape, fortran, found_dtype = fmt.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            if found_dtype.hasobject:
                raise ValueError("it holds Python objects, which packer never unpickles")
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
        self._arrays: dict[str, np.ndarray] = {}
        self._keys_map: mmap.mmap | bytes | None = None

    def array(self, name: str) -> np.ndarray:
        arr = self._arrays.get(name)
        if arr is None:
            dtype, tail, extra = INDEX_ARRAYS[name]
            arr = map_npy(self.root / INDEX_DIR / f"{name}.npy", dtype, (self._n + extra, *tail))
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

    def iter_keys(self) -> Iterator[str]:
        blob = self.keys_blob()
        for start in range(0, self._n, 65536):
            bounds = self.key_offsets[start : start + 65537].tolist()
            chunk = blob[bounds[0] : bounds[-1]]
            base = bounds[0]
            for j in range(len(bounds) - 1):
                yield decode_key(chunk[bounds[j] - base : bounds[j + 1] - base])

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
