"""``--resume``: finished shards of an interrupted convert, recorded so that a rerun reuses them.

A partial pack keeps a ``.resume`` folder: the digest of what it was planned from, and per finished
shard its :class:`~packer.conversion.result.ShardResult` (arrays in ``.npz``, the rest in ``.json``, each
written under a temporary name and renamed). A record is reused only if the plan is the same, the
data file still has its recorded sha256 and its source files still have the sizes it was cut from,
so the result is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from packer._util.columns import hash_array
from packer._util.files import sha256_file
from packer.conversion.cuts import stat_size
from packer.conversion.job import ShardJob
from packer.conversion.result import ShardResult
from packer.format.manifest import DataFile
from packer.run.pools import available_cpus

RESUME_DIR = ".resume"
#: What reading a damaged or cut-short record raises.
RECORD_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError, zipfile.BadZipFile)


def plan_digest(job: ShardJob, extra: dict[str, Any]) -> str:
    """What a resumable partial pack was planned from: any change means starting over. (File
    sizes are checked per reused shard, see :func:`reusable`.)"""
    h = hashlib.sha256()
    h.update(json.dumps([job.backend_name, job.backend_options, extra], sort_keys=True).encode())
    h.update(f"{len(job.paths)}\n".encode())
    for a in range(0, len(job.paths), 65536):  # a block at a time: no copy of every path
        h.update(
            "".join(p + "\n" for p in job.paths[a : a + 65536]).encode("utf-8", "surrogateescape")
        )
    hash_array(h, job.labels)
    hash_array(h, job.extension_ids)
    return h.hexdigest()


def reusable(record: ShardResult | None, job: ShardJob) -> bool:
    """A finished shard is reused only if it starts where ``job`` must and its source files still
    have the sizes it was cut from (so every later boundary is the same)."""
    if record is None or record.start != job.start:
        return False
    root = os.fspath(job.root) + os.sep
    paths = job.paths[job.start : job.start + record.consumed]
    return (
        len(paths) == record.consumed
        and sum(stat_size(root + p) for p in paths) == record.planned_bytes
    )


def save_result(folder: Path, result: ShardResult) -> None:
    """Record a finished shard so that ``--resume`` can reuse it (written atomically)."""
    stem = folder / f"shard-{result.shard:05d}"
    arrays, info = result.to_record()
    tmp = stem.with_suffix(".tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    tmp.rename(stem.with_suffix(".npz"))
    stem.with_suffix(".tmp.json").write_text(json.dumps(info))
    stem.with_suffix(".tmp.json").rename(stem.with_suffix(".json"))


@dataclass(frozen=True)
class Record:
    """A finished shard's record: its JSON read, its arrays (``.npz``) loaded only on demand, so
    a merge holds one shard's rows at a time however many samples the parts have."""

    path: Path  # shard-NNNNN.json, beside its .npz
    shard: int
    data_file: DataFile
    info: dict[str, Any]

    def load(self) -> ShardResult:
        """The shard's result; raises one of :data:`RECORD_ERRORS` on a bad record."""
        # np.load leaves its own file open when the zip is damaged: open it here instead
        with open(self.path.with_suffix(".npz"), "rb") as f, np.load(f, allow_pickle=False) as npz:
            return ShardResult.from_record({k: npz[k] for k in npz.files}, self.info)


def load_results(folder: Path, out_dir: Path) -> dict[int, ShardResult]:
    """Finished shards of an interrupted run whose data file is still exactly what was recorded
    (the sha256 checks run in a few threads: hashing releases the GIL, a merge has many files)."""
    candidates: list[ShardResult] = []
    for record in read_records(folder, out_dir):
        try:
            candidates.append(record.load())
        except RECORD_ERRORS:
            continue  # a record cut short by the crash: that shard is simply written again
    with ThreadPoolExecutor(hash_threads()) as pool:
        checks = list(pool.map(lambda r: intact(r.data_file, out_dir), candidates))
    return {r.shard: r for r, ok in zip(candidates, checks, strict=True) if ok}


def read_records(folder: Path, out_dir: Path) -> list[Record]:
    """The readable shard records in ``folder`` whose data file in ``out_dir`` has the recorded
    size (its sha256 is :func:`intact`'s to check)."""
    records: list[Record] = []
    for info_path in sorted(folder.glob("shard-*.json")):
        try:
            info = json.loads(info_path.read_text())
            data_file = DataFile(**info["data_file"])
            path = out_dir / data_file.name
            if (
                info_path.with_suffix(".npz").is_file()
                and path.is_file()
                and path.stat().st_size == data_file.bytes
            ):
                records.append(Record(info_path, int(info["shard"]), data_file, info))
        except RECORD_ERRORS:
            continue  # a record cut short by the crash: that shard is simply written again
    return records


def intact(data_file: DataFile, out_dir: Path) -> bool:
    """Whether the data file in ``out_dir`` still has its recorded sha256."""
    try:
        return sha256_file(out_dir / data_file.name) == data_file.sha256
    except OSError:
        return False


def hash_threads() -> int:
    return max(1, min(4, available_cpus()))


def prepare_resume(partial: Path, digest: str) -> dict[int, ShardResult]:
    """Finished shards to reuse from an interrupted run planned with the same ``digest`` (a
    convert's :func:`plan_digest`, a part's saved plan digest); start the record."""
    folder = partial / RESUME_DIR
    plan_file = folder / "plan"
    done: dict[int, ShardResult] = {}
    if plan_file.is_file() and plan_file.read_text() == digest:
        done = load_results(folder, partial)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(exist_ok=True)
    plan_file.write_text(digest)
    return done


def remove_strays(partial: Path, data_files: set[str]) -> None:
    """Drop the resume records and anything an interrupted run left that is not part of the pack."""
    shutil.rmtree(partial / RESUME_DIR, ignore_errors=True)
    for entry in partial.iterdir():
        if (
            entry.is_file()
            and entry.name not in data_files
            and not entry.name.startswith(".packer-owner")
        ):
            entry.unlink()
