"""Writing a pack to a URL (``pack convert SRC s3://bucket/train.pack``, ``pack merge ... URL``,
``pack convert SRC URL --update``).

The pack is built in a local temporary folder (``$PACKER_TMPDIR`` or the system's), exactly as a
local convert builds it, then uploaded: data and index files first (several at once), each
checked by size, and the manifest last. A reader refuses a prefix without a manifest, so the pack
appears whole or not at all. ``--force`` semantics are those of a local DST: without it an
existing pack is an error before any work; with it the old manifest is deleted first (readers of
the old pack then fail cleanly: every payload is CRC-checked), the new pack is uploaded, and files
of the old pack that the new one does not have are removed after its manifest is in place.

``--update`` works on a local *shadow* of the remote pack: its manifest, index and update state,
and a sparse placeholder of the recorded size for each data file. The update runs on the shadow as
on a local pack (placeholders of reused shards are hard-linked, never read), so only the shards
that changed are written; then those are uploaded, reused shards whose number moved are copied
server-side, and the index, state and manifest follow. Nothing changed: nothing is written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from packer._util.files import STATE_DIR
from packer.errors import OutputError, UsageError
from packer.format.index import INDEX_DIR
from packer.format.keys import safe_relative
from packer.format.manifest import MANIFEST_NAME, Manifest
from packer.storage.store import Store, fetch_manifest

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


def update_at_url(
    url: str,
    build: Callable[[Path], R],
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> R:
    """Run ``build(local)`` (a ``convert(..., update=True)``) on a shadow of the pack at ``url``,
    then send what changed (see the module docstring)."""
    store = Store(url, storage_options)
    with tempfile.TemporaryDirectory(prefix="packer-", dir=os.environ.get("PACKER_TMPDIR")) as tmp:
        local = Path(tmp) / "pack"
        placeholders = _shadow(store, local)
        before = {p: p.stat().st_mtime_ns for p in local.rglob("*") if p.is_file()}
        result = build(local)
        reused = {
            name: placeholders[(local / name).stat().st_ino]
            for name in _data_names(local)
            if (local / name).stat().st_ino in placeholders
        }
        changed = [
            p for p in local.rglob("*") if p.is_file() and before.get(p) != p.stat().st_mtime_ns
        ]
        if not changed:
            return result  # up to date: nothing written here, nothing sent
        if not [p for p in changed if STATE_DIR not in p.parts]:  # only refreshed mtimes
            for path in changed:
                _put(store, path, path.relative_to(local).as_posix())
            return result
        upload(local, store, replace=bool(placeholders), reused=reused)
    return result


def _shadow(store: Store, local: Path) -> dict[int, str]:
    """The remote pack's manifest, index and update state in ``local``, and a sparse placeholder
    per data file; returns placeholder inode -> data file name ({} when there is no pack)."""
    if not _has_manifest(store):
        return {}
    raw, manifest = fetch_manifest(store)
    local.mkdir()
    listing = store.listing()
    for name in sorted(listing):
        if name.startswith((f"{INDEX_DIR}/", f"{STATE_DIR}/")):
            target = local / safe_relative(name)  # a key with ".." must not write outside
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(store.cat(name))
    out: dict[int, str] = {}
    for data_file in manifest.data_files:
        path = local / data_file.name
        if listing.get(data_file.name) != data_file.bytes:
            continue  # missing or another size: not reusable
        with open(path, "wb") as f:
            f.truncate(data_file.bytes)  # sparse: no disk, never read
        out[path.stat().st_ino] = data_file.name
    (local / MANIFEST_NAME).write_bytes(raw)
    return out


def _data_names(local: Path) -> list[str]:
    return [d.name for d in Manifest.read(local).data_files]


def _has_manifest(store: Store) -> bool:
    path = store.path(MANIFEST_NAME)
    return bool(store.call(store.url, lambda: store.fs.exists(path)))


def upload(
    local: Path, store: Store, *, replace: bool, reused: Mapping[str, str] | None = None
) -> None:
    """Upload the pack folder ``local`` to ``store`` (see the module docstring). ``reused``: new
    data file name -> the old one already in the bucket with the same bytes (copied there)."""
    reused = dict(reused or {})
    files = sorted(p for p in local.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    names = [p.relative_to(local).as_posix() for p in files]
    fs = store.fs
    old: dict[str, int] = {}
    if replace:
        old = store.listing()
        manifest = store.path(MANIFEST_NAME)
        store.call(store.name_url(MANIFEST_NAME), lambda: fs.rm_file(manifest))
    moved = {new: source for new, source in reused.items() if new != source}
    staged = {new: f".packer-update-{new}" for new in moved}  # sources may be overwritten below
    for new, source in sorted(moved.items()):
        _copy(store, source, staged[new])
    sent = [(n, p) for n, p in zip(names, files, strict=True) if n not in reused]
    remote = [store.path(n) for n, _ in sent]
    store.call(store.url, lambda: fs.put([os.fspath(p) for _, p in sent], remote))
    for new in sorted(moved):
        _copy(store, staged[new], new)
        _remove(store, staged[new])
    fs.invalidate_cache()
    uploaded = store.listing()
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


def _put(store: Store, path: Path, name: str) -> None:
    target = store.path(name)
    store.call(store.name_url(name), lambda: store.fs.put_file(os.fspath(path), target))


def _copy(store: Store, source: str, target: str) -> None:
    """A server-side copy within the pack's prefix (no bytes through this machine)."""
    a, b = store.path(source), store.path(target)
    store.call(store.name_url(source), lambda: store.fs.copy(a, b))


def _remove(store: Store, name: str) -> None:
    path = store.path(name)
    store.call(store.name_url(name), lambda: store.fs.rm_file(path))


def refuse_url(what: str, url: str) -> NoReturn:
    raise UsageError(
        f"{url}: {what} needs a local pack; `pack stage {url} LOCAL`, run it there, then "
        "convert or upload again"
    )
