"""Writing a pack to a URL (``pack convert SRC s3://bucket/train.pack``, ``pack merge ... URL``).

The pack is built in a local temporary folder (``$PACKER_TMPDIR`` or the system's), exactly as a
local convert builds it, then uploaded: data and index files first (several at once), each
checked by size, and the manifest last. A reader refuses a prefix without a manifest, so the pack
appears whole or not at all. ``--force`` semantics are those of a local DST: without it an
existing pack is an error before any work; with it the old manifest is deleted first (readers of
the old pack then fail cleanly: every payload is CRC-checked), the new pack is uploaded, and files
of the old pack that the new one does not have are removed after its manifest is in place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from packer.errors import OutputError, UsageError
from packer.manifest import MANIFEST_NAME
from packer.remote import Store

R = TypeVar("R")


def to_url(
    url: str,
    build: Callable[[Path], R],
    *,
    force: bool,
    storage_options: Mapping[str, Any] | None = None,
) -> R:
    """Run ``build(local_folder)`` (which writes a pack there) and upload the result to ``url``."""
    store = Store(url, storage_options)
    exists = _has_manifest(store)
    if exists and not force:
        raise OutputError(
            f"{url}: already exists; pass --force to replace it, or choose another DST"
        )
    with tempfile.TemporaryDirectory(prefix="packer-", dir=os.environ.get("PACKER_TMPDIR")) as tmp:
        local = Path(tmp) / "pack"
        result = build(local)
        if local.is_dir():  # a dry run builds nothing
            upload(local, store, replace=exists)
    return result


def _has_manifest(store: Store) -> bool:
    path = store.path(MANIFEST_NAME)
    return bool(store.call(store.url, lambda: store.fs.exists(path)))


def upload(local: Path, store: Store, *, replace: bool) -> None:
    """Upload the pack folder ``local`` to ``store`` (see the module docstring)."""
    files = sorted(p for p in local.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    names = [p.relative_to(local).as_posix() for p in files]
    fs = store.fs
    if replace:
        old = _listing(store)
        manifest = store.path(MANIFEST_NAME)
        store.call(store.name_url(MANIFEST_NAME), lambda: fs.rm_file(manifest))
    remote = [store.path(n) for n in names]
    store.call(store.url, lambda: fs.put([os.fspath(p) for p in files], remote))
    fs.invalidate_cache()
    uploaded = _listing(store)
    for name, path in zip(names, files, strict=True):
        if uploaded.get(name) != path.stat().st_size:
            raise OutputError(
                f"{store.name_url(name)}: uploaded size {uploaded.get(name)} differs from "
                f"{path.stat().st_size}; nothing is published (no {MANIFEST_NAME}), run it again"
            )
    data = (local / MANIFEST_NAME).read_bytes()
    manifest_path = store.path(MANIFEST_NAME)
    store.call(store.name_url(MANIFEST_NAME), lambda: fs.pipe_file(manifest_path, data))
    if replace:
        stale = sorted(set(old) - set(names) - {MANIFEST_NAME})
        if stale:
            paths = [store.path(n) for n in stale]
            store.call(store.url, lambda: fs.rm(paths))


def _listing(store: Store) -> dict[str, int]:
    """Every object under the pack's prefix: relative name -> size."""
    root = store.path("").rstrip("/") + "/"
    found: dict[str, Any] = store.call(
        store.url, lambda: store.fs.find(root, detail=True, withdirs=False)
    )
    return {k[len(root) :]: int(v.get("size") or 0) for k, v in found.items() if k.startswith(root)}


def refuse_url(what: str, url: str) -> None:
    raise UsageError(
        f"{url}: {what} needs a local pack; `pack stage {url} LOCAL`, run it there, then "
        "convert or upload again"
    )
