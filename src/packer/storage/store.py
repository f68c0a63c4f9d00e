"""Object storage by URL (any fsspec URL; ``s3://`` with ``packer[s3]``): a store with retries and
plain error messages, the manifest fetched, and a pack's index cached on local disk.

Credentials and endpoints come only from the standard places (environment such as
``AWS_ENDPOINT_URL``, profiles, ``storage_options``) and are never logged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from packer._util.files import write_file_synced
from packer.errors import PackError, UsageError
from packer.format.index import INDEX_DIR
from packer.format.keys import safe_relative
from packer.format.manifest import MANIFEST_NAME, Manifest

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
