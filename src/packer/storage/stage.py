"""``pack stage SRC LOCAL``: copy a pack to fast local disk (from a URL, or a shared filesystem
path to a node's SSD), verified, resumable, once per node.

- One copy per node: an exclusive ``flock`` on ``.LOCAL.packer-stage.lock`` beside LOCAL; other
  processes wait on it, then find the pack there and return at once (a no-op, said so).
- Resumable per file: files are fetched into ``.LOCAL.packer-partial`` as ``NAME.part`` and
  continued from their size after a kill; a finished file is kept only if its sha256 matches the
  manifest's, so a resumed stage transfers only what was missing.
- Every file is checked against the manifest (data files: size and sha256; index files and
  loader indexes: sha256); the manifest is written last and the folder renamed into place, so
  LOCAL is either absent, the previous pack, or the whole verified new one.
- Free space is checked before the first byte. Several files download at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packer._util.files import require_free_space, sha256_file, write_file_synced
from packer.errors import OutputError, PackError
from packer.format.keys import safe_relative
from packer.format.manifest import MANIFEST_NAME, Manifest
from packer.format.staging import Staging
from packer.progress import NoProgress, Progress
from packer.storage.store import Store, fetch_manifest, is_url, local_path

CHUNK = 16 << 20  # bytes per request while copying a file


@dataclass
class StageReport:
    """What ``pack stage`` did (``to_dict`` is its ``--json``)."""

    path: Path
    source: str
    files: int
    bytes_total: int
    bytes_copied: int
    seconds: float
    already: bool  # LOCAL already held this very pack: nothing was copied

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "source": self.source,
            "files": self.files,
            "bytes_total": self.bytes_total,
            "bytes_copied": self.bytes_copied,
            "seconds": round(self.seconds, 3),
            "already_staged": self.already,
        }


@dataclass(frozen=True)
class _File:
    name: str
    sha256: str
    size: int | None  # known for data files


def stage(
    src: str | os.PathLike[str],
    local: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    workers: int = 4,
    force: bool = False,
    progress: Progress | None = None,
) -> StageReport:
    """Copy the pack at ``src`` (a URL or a path) to the folder ``local`` (see the module
    docstring). ``force`` replaces a different pack at ``local``."""
    started = time.perf_counter()
    progress = progress or NoProgress()
    source = os.fspath(src) if is_url(src) else os.fspath(local_path(src).absolute())
    store = Store(source, storage_options)
    dst = local_path(local)
    with _node_lock(dst):
        raw, manifest = fetch_manifest(store)
        files = _files(manifest)
        if _holds(dst, raw, manifest):
            total = sum((dst / f.name).stat().st_size for f in files) + len(raw)
            return StageReport(
                dst, source, len(files) + 1, total, 0, time.perf_counter() - started, True
            )
        try:
            with Staging(dst, force=force, keep_partial=True, keep_on_error=True) as staging:
                _check_space(staging.path, files)
                copied = _copy_all(store, staging.path, files, workers, progress)
                write_file_synced(staging.path / MANIFEST_NAME, raw)  # last
                total = sum((staging.path / f.name).stat().st_size for f in files) + len(raw)
                staging.commit()
        except OSError as exc:
            raise OutputError(
                f"{dst}: cannot write ({exc.strerror or exc}); check the disk"
            ) from None
    return StageReport(
        dst, source, len(files) + 1, total, copied + len(raw), time.perf_counter() - started, False
    )  # total: every file's size; copied: the bytes this run fetched


@contextlib.contextmanager
def _node_lock(dst: Path) -> Iterator[None]:
    """One stager per LOCAL on this node; the others wait, then find the pack there."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    lock = dst.parent / f".{dst.name}.packer-stage.lock"
    with open(lock, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _files(manifest: Manifest) -> list[_File]:
    """Every file of the pack but the manifest: data files, index files, loader indexes."""
    out = [_File(d.name, d.sha256, d.bytes) for d in manifest.data_files]
    # names from a manifest are checked: "index/../../x" must not write outside LOCAL
    out += [_File(safe_relative(n), sha, None) for n, sha in sorted(manifest.index_sha256.items())]
    return out


def _holds(dst: Path, raw: bytes, manifest: Manifest) -> bool:
    """LOCAL is this pack already (a stage only ever commits a verified copy)."""
    try:
        if (dst / MANIFEST_NAME).read_bytes() != raw:
            return False
    except OSError:
        return False
    return all(
        (dst / d.name).is_file() and (dst / d.name).stat().st_size == d.bytes
        for d in manifest.data_files
    ) and all((dst / name).is_file() for name in manifest.index_sha256)


def _check_space(folder: Path, files: list[_File]) -> None:
    needed = 0
    for f in files:
        if f.size is None or (folder / f.name).is_file():
            continue
        part = folder / f"{f.name}.part"
        needed += f.size - (part.stat().st_size if part.is_file() else 0)
    require_free_space(
        folder.parent, needed, "the pack", "free some space or stage to another disk"
    )


def _copy_all(
    store: Store, folder: Path, files: list[_File], workers: int, progress: Progress
) -> int:
    lock = threading.Lock()
    copied = 0

    def advance(done: int, nbytes: int) -> None:
        nonlocal copied
        with lock:
            copied += nbytes
            progress.advance(done, nbytes)

    progress.start(len(files), f"stage -> {folder.name.removeprefix('.')}", unit="files")
    try:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for future in [pool.submit(_copy_one, store, folder, f, advance) for f in files]:
                future.result()
    finally:
        progress.finish()
    return copied


def _copy_one(store: Store, folder: Path, f: _File, advance: Any) -> None:
    """Fetch one file (continuing a ``.part`` left by a killed stage), hashing as it arrives."""
    target = folder / f.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and sha256_file(target) == f.sha256:
        advance(1, 0)  # finished by an earlier, interrupted stage
        return
    part = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    if f.size is None:  # an index file: small, fetched whole in one GET
        part.unlink(missing_ok=True)
        blob = store.cat(f.name)
        with open(part, "wb") as out:
            out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        digest.update(blob)
        advance(0, len(blob))
    else:
        have = part.stat().st_size if part.is_file() else 0
        if have > f.size:
            part.unlink()
            have = 0
        if have:
            with open(part, "rb") as begun:  # what a killed stage fetched: hashed, not fetched
                while block := begun.read(CHUNK):
                    digest.update(block)
        with open(part, "ab") as out:
            while have < f.size:
                blob = store.cat(f.name, have, min(f.size, have + CHUNK))
                if not blob:
                    raise PackError(f"{store.name_url(f.name)}: shorter than the manifest says")
                out.write(blob)
                digest.update(blob)
                have += len(blob)
                advance(0, len(blob))
            out.flush()
            os.fsync(out.fileno())
    if digest.hexdigest() != f.sha256:
        part.unlink()
        raise PackError(
            f"{store.name_url(f.name)}: sha256 differs from the manifest's (changed during the "
            "copy, or damaged at the source); run `pack stage` again, or `pack verify` the source"
        )
    part.rename(target)
    advance(1, 0)
