"""Packs in object storage: ``open_pack("s3://bucket/train.pack")`` (any fsspec URL).

The manifest is fetched on every open (one small GET); the index files it lists are fetched once
into a local cache folder named by the manifest's sha256 and checked against the manifest's own
sha256 of each, so a warm open transfers no index bytes and a changed pack is a new cache entry.
Samples of raw-range backends (tar, zip stored, memmap, arrow, uncompressed hdf5) are range
requests: one GET per random sample, and neighbouring ranges coalesced into few large GETs for
sequential iteration and :meth:`RemotePack.read_many`. Every payload is checked against the
CRC-32 in the index, so an object replaced under a reader is an error, never wrong data.
Backends that cannot be read by range say so and point to ``pack stage``.

Needs ``pip install 'packer[s3]'`` for ``s3://`` (fsspec itself comes with it). Credentials and
endpoints come only from the standard places (environment such as ``AWS_ENDPOINT_URL``, profiles,
``storage_options``) and are never logged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from packer import pack as pack_module
from packer.backends.base import DataReader
from packer.errors import PackError, UsageError
from packer.files import write_file_synced
from packer.index import INDEX_DIR
from packer.keys import safe_relative
from packer.manifest import MANIFEST_NAME, Manifest
from packer.pack import Pack

T = TypeVar("T")

#: Ranges closer than this are fetched as one GET (the bytes between are read and dropped).
MAX_GAP = 1 << 20
#: ... up to this many bytes per GET.
MAX_SPAN = 64 << 20
#: Errors no retry can fix (a bad URL, option or credential): reported at once.
_PERMANENT = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    ValueError,
    TypeError,
)


def is_url(location: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` other than ``file://`` (which is read as a local path)."""
    text = os.fspath(location)
    return "://" in text and not text.startswith("file://")


def local_path(location: str | os.PathLike[str]) -> Path:
    text = os.fspath(location)
    return Path(text.removeprefix("file://"))


def default_cache_dir() -> Path:
    """``$PACKER_CACHE``, else ``$XDG_CACHE_HOME/packer``, else ``~/.cache/packer``."""
    if os.environ.get("PACKER_CACHE"):
        return Path(os.environ["PACKER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "packer"


def default_retries() -> int:
    """Retries after a transient error: ``$PACKER_RETRIES``, else 3."""
    text = os.environ.get("PACKER_RETRIES", "")
    return int(text) if text.isdigit() else 3


class Store:
    """One remote folder: an fsspec filesystem per process (never shared across ``fork``), with
    retries and backoff for transient errors and one-line errors naming the URL."""

    def __init__(
        self,
        url: str,
        storage_options: Mapping[str, Any] | None = None,
        *,
        retries: int | None = None,
        backoff: float = 0.5,
    ) -> None:
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.retries = default_retries() if retries is None else retries
        self.backoff = backoff
        self._fs: Any = None
        self._root = ""
        self._pid = -1

    @property
    def fs(self) -> Any:
        if self._fs is None or self._pid != os.getpid():
            try:
                import fsspec
            except ImportError:
                raise UsageError(
                    f"{self.url}: reading URLs needs fsspec: pip install 'packer[s3]'"
                ) from None
            try:
                self._fs, self._root = fsspec.core.url_to_fs(self.url, **self.storage_options)
            except ImportError as exc:
                raise UsageError(
                    f"{self.url}: no filesystem for this URL ({exc}); for s3:// run "
                    "pip install 'packer[s3]'"
                ) from None
            self._pid = os.getpid()
        return self._fs

    def path(self, name: str) -> str:
        self.fs  # noqa: B018 - sets _root
        return f"{self._root}/{name}" if name else self._root

    def name_url(self, name: str) -> str:
        return f"{self.url}/{name}" if name else self.url

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried with exponential backoff on transient errors; errors as PackError."""
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except FileNotFoundError:
                raise PackError(
                    f"{what}: not found; check the URL (a pack is complete only once its "
                    f"{MANIFEST_NAME} is there)"
                ) from None
            except PermissionError:
                raise PackError(
                    f"{what}: access denied; check the credentials (environment, profile or "
                    "storage_options) and the bucket's policy"
                ) from None
            except _PERMANENT as exc:
                raise PackError(f"{what}: {exc}") from None
            except Exception as exc:  # network errors have no common base: retry, then say
                if attempt == self.retries:
                    raise PackError(
                        f"{what}: failed after {attempt + 1} attempt(s) ({type(exc).__name__}: "
                        f"{exc}); check the endpoint (AWS_ENDPOINT_URL) and the network"
                    ) from None
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def cat(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``start:end`` of an object (all of it by default): one ranged GET (s3fs sends a
        HEAD first for a whole-object read without a range)."""
        path = self.path(name)
        data: bytes = self.call(
            self.name_url(name), lambda: self.fs.cat_file(path, start=start, end=end)
        )
        return data

    def cat_ranges(
        self, names: Sequence[str], starts: Sequence[int], ends: Sequence[int]
    ) -> list[bytes]:
        """Several ranges at once (concurrent requests on async filesystems such as s3fs)."""
        paths = [self.path(n) for n in names]
        got: list[Any] = self.call(
            self.name_url(names[0]) if names else self.url,
            lambda: self.fs.cat_ranges(paths, list(starts), list(ends), on_error="raise"),
        )
        return [bytes(g) for g in got]

    def listing(self) -> dict[str, int]:
        """Every object under this folder: relative name -> size (one paginated listing)."""
        root = self.path("").rstrip("/") + "/"
        found: dict[str, Any] = self.call(
            self.url, lambda: self.fs.find(root, detail=True, withdirs=False)
        )
        return {
            k[len(root) :]: int(v.get("size") or 0) for k, v in found.items() if k.startswith(root)
        }

    def info(self, name: str) -> dict[str, Any]:
        path = self.path(name)
        result: dict[str, Any] = self.call(self.name_url(name), lambda: self.fs.info(path))
        return result


def fetch_manifest(store: Store) -> tuple[bytes, Manifest]:
    raw = store.cat(MANIFEST_NAME)
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise PackError(f"{store.name_url(MANIFEST_NAME)}: not valid JSON ({exc})") from None
    return raw, Manifest.from_dict(document, store.name_url(MANIFEST_NAME))


def cached_index(store: Store, cache_dir: str | os.PathLike[str] | None) -> Path:
    """A local folder holding the pack's manifest and index files (fetched once, checked)."""
    raw, manifest = fetch_manifest(store)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    local = root / hashlib.sha256(raw).hexdigest()
    if (local / MANIFEST_NAME).is_file():
        return local  # filled and checked before its manifest was written
    tmp = root / f".{local.name}.{os.getpid()}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    names = sorted(n for n in manifest.index_sha256 if n.startswith(f"{INDEX_DIR}/"))
    try:
        (tmp / INDEX_DIR).mkdir(parents=True)
        for name in names:
            target = tmp / safe_relative(name)  # "index/../../x" must not write outside
            blob = store.cat(name)
            if hashlib.sha256(blob).hexdigest() != manifest.index_sha256[name]:
                raise PackError(
                    f"{store.name_url(name)}: sha256 differs from the manifest's (the pack "
                    "changed while it was read, or is damaged); open it again, or run pack verify"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            write_file_synced(target, blob)
        write_file_synced(tmp / MANIFEST_NAME, raw)  # last: marks the entry complete
        try:
            tmp.rename(local)
        except OSError:  # another process filled it first: use theirs
            if not (local / MANIFEST_NAME).is_file():
                raise
    except OSError as exc:
        raise PackError(f"{root}: cannot write the index cache ({exc}); pass cache_dir") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return local


class RemotePack(Pack):
    """A pack read from a URL; the same interface as :class:`~packer.pack.Pack`.

    Args:
        url: the pack folder's URL (``s3://bucket/train.pack``, ``gs://...``, ``https://...``).
        storage_options: passed to fsspec (e.g. ``{"client_kwargs": {"endpoint_url": ...}}``).
        cache_dir: where manifest and index are cached (default :func:`default_cache_dir`).
        retries: attempts after the first for a transient error, with exponential backoff
            (default ``$PACKER_RETRIES``, else 3).
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        retries: int | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.store = Store(self.url, self.storage_options, retries=retries)
        super().__init__(cached_index(self.store, self.cache_dir))
        if not self.backend.raw_ranges:
            raise PackError(
                f"{self.url}: a {self.backend.name} pack cannot be read by byte range from "
                f"object storage; copy it to local disk first: pack stage {self.url} LOCAL"
            )
        self._names = [d.name for d in self.manifest.data_files]
        self._crc = self.index.crc32

    def _open_reader(self) -> DataReader:
        self._maps = None
        self._reader = _RangeReader(self)
        self._pid = os.getpid()
        return self._reader

    def read_many(self, indices: Sequence[int] | np.ndarray) -> list[bytes]:
        """The stored bytes of each sample in ``indices`` (in that order), fetched with as few
        requests as neighbouring ranges allow."""
        positions = [self._position(int(i)) for i in np.asarray(indices).ravel().tolist()]
        rows = np.asarray(self.index.locations[positions], dtype=np.int64).reshape(-1, 3)
        return self._read_rows(rows, positions)

    def _blocks(self) -> Iterator[tuple[int, Iterator[bytes], list[int]]]:
        """Blocks of samples in order, the next block's GETs in flight while this one is used."""
        locations, labels = self.index.locations, self.index.labels
        step = pack_module.BLOCK_ROWS  # looked up here: tests shrink it to cross every block
        starts = list(range(0, self._n, step))

        def fetch(start: int) -> list[bytes]:
            stop = min(start + step, self._n)
            rows = np.asarray(locations[start:stop], dtype=np.int64)
            return self._read_rows(rows, list(range(start, stop)))

        with ThreadPoolExecutor(1) as ahead:
            pending = ahead.submit(fetch, starts[0]) if starts else None
            for k, start in enumerate(starts):
                assert pending is not None
                data = pending.result()
                pending = ahead.submit(fetch, starts[k + 1]) if k + 1 < len(starts) else None
                yield start, iter(data), labels[start : start + len(data)].tolist()

    def _read_rows(self, rows: np.ndarray, positions: list[int]) -> list[bytes]:
        """Payloads of index ``rows`` (file, offset, length), coalesced into few GETs."""
        if not len(rows):
            return []
        if len(rows) and int(rows[:, 0].max()) >= len(self._names):
            raise self._bad_location(positions[int(rows[:, 0].argmax())], int(rows[:, 0].max()))
        order = np.lexsort((rows[:, 1], rows[:, 0]))
        spans: list[tuple[int, int, int]] = []  # (file, start, end)
        members: list[list[int]] = []
        for j in order.tolist():
            f, off, n = (int(x) for x in rows[j])
            if spans and spans[-1][0] == f and off - spans[-1][2] <= MAX_GAP:
                g, a, b = spans[-1]
                if max(b, off + n) - a <= MAX_SPAN:
                    spans[-1] = (g, a, max(b, off + n))
                    members[-1].append(j)
                    continue
            spans.append((f, off, off + n))
            members.append([j])
        blobs = self.store.cat_ranges(
            [self._names[f] for f, _, _ in spans],
            [a for _, a, _ in spans],
            [b for _, _, b in spans],
        )
        out: list[bytes] = [b""] * len(rows)
        for (f, a, _), blob, group in zip(spans, blobs, members, strict=True):
            for j in group:
                off, n = int(rows[j, 1]), int(rows[j, 2])
                out[j] = self._checked(blob[off - a : off - a + n], n, positions[j], f)
        return out

    def _checked(self, data: bytes, length: int, i: int, file_id: int) -> bytes:
        if len(data) != length or zlib.crc32(data) != int(self._crc[i]):
            raise PackError(
                f"{self.store.name_url(self._names[file_id])}: sample {i} is not what the index "
                "says (length or CRC-32 differs): the object changed after the pack was written, "
                "or is damaged; open the pack again or re-upload it"
            )
        return data

    def __getstate__(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "storage_options": self.storage_options,
            "cache_dir": self.cache_dir,
            "retries": self.store.retries,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["url"],
            storage_options=state["storage_options"],
            cache_dir=state["cache_dir"],
            retries=state["retries"],
        )

    def __repr__(self) -> str:
        return f"RemotePack({self.url!r}, backend={self.backend.name!r}, samples={self._n})"


class _RangeReader(DataReader):
    """One GET per sample read alone (random access)."""

    def __init__(self, pack: RemotePack) -> None:
        self.pack = pack

    def read(self, file_id: int, offset: int, length: int, index: int) -> bytes:
        pack = self.pack
        data = pack.store.cat(pack._names[file_id], offset, offset + length)
        return pack._checked(data, length, index, file_id)

    def close(self) -> None:
        """Nothing to release: the filesystem belongs to the store."""
