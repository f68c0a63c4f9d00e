"""``pack verify URL``: the objects as they are in the bucket, checked like a local pack.

Every object the manifest names is downloaded as it is (whatever its size: a truncated or
appended object must be reported as such, not refused) into a temporary folder
(``$PACKER_TMPDIR`` or the system's), and the local :func:`~packer.check.local.verify_local` runs on
it, so a remote pack gets every check a local one does (sha256 of every file, CRC-32 of every
sample, loader indexes, ``--deep`` decoding). Problems name the URL. A missing object is reported
as missing. Disk use is the pack's size, for the time of the check.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from packer._util.files import require_free_space
from packer.check.local import verify_local
from packer.check.report import Problem, VerifyReport
from packer.errors import PackError
from packer.format.keys import safe_relative
from packer.format.manifest import MANIFEST_NAME
from packer.progress import NoProgress, Progress
from packer.storage.stage import CHUNK
from packer.storage.store import Store, fetch_manifest


def verify_url(
    url: str,
    *,
    deep: bool = False,
    max_pixels: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> VerifyReport:
    store = Store(url, storage_options)
    raw, manifest = fetch_manifest(store)  # no manifest: not a pack (PackError, exit 5)
    names = [d.name for d in manifest.data_files] + sorted(manifest.index_sha256)
    with tempfile.TemporaryDirectory(
        prefix="packer-verify-", dir=os.environ.get("PACKER_TMPDIR")
    ) as tmp:
        folder = Path(tmp) / "pack"
        folder.mkdir()
        require_free_space(
            folder.parent,
            sum(d.bytes for d in manifest.data_files),
            f"verifying {url}",
            "set PACKER_TMPDIR to a bigger disk",
        )
        with ThreadPoolExecutor(4) as pool:
            for future in [pool.submit(_fetch, store, folder, n) for n in names]:
                future.result()
        (folder / MANIFEST_NAME).write_bytes(raw)
        report = verify_local(
            folder,
            deep=deep,
            max_pixels=max_pixels,
            workers=workers,
            progress=progress or NoProgress(),
        )
    report.url = store.url
    prefix = str(folder)
    report.problems = [_renamed(p, prefix, store.url) for p in report.problems]
    report.decoder_warnings = [_renamed(p, prefix, store.url) for p in report.decoder_warnings]
    return report


def _fetch(store: Store, folder: Path, name: str) -> None:
    """The object as it is, in chunks; nothing if it is missing (verify then says so)."""
    try:
        size = int(store.info(name)["size"])
    except PackError as exc:
        if "not found" in str(exc):
            return
        raise
    target = folder / safe_relative(name)  # a manifest naming "../x" must not write outside
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        for start in range(0, size, CHUNK):
            out.write(store.cat(name, start, min(size, start + CHUNK)))


def _renamed(problem: Problem, prefix: str, url: str) -> Problem:
    return Problem(problem.kind, problem.where.replace(prefix, url), problem.message)
