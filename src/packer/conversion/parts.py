"""Converting in parts and merging them: SLURM arrays, CI matrices, plain ssh; no engine needed.

``pack plan SRC PLAN`` fixes every decision (:class:`~packer.conversion.plan.Plan`). Part ``I`` of ``N``
writes the ``I``-th contiguous block of the plan's *global* shards (names never depend on task or
attempt ids) into its own folder::

    OUT_I/part.json                  plan digest, part I/N, its shards, versions
    OUT_I/shard-00012.tar ...        data files, named by global shard number
    OUT_I/records/shard-00012.{npz,json}   each shard's index rows (its ShardResult)

``pack merge`` checks every part against the plan (digest, versions, no missing or duplicated
shard, every data file's size and sha256), links (or copies) the data files into a staged DST,
writes the index and manifest with the same code a convert uses, and renames DST into place: the
pack is byte-identical to a single ``pack convert`` with the same options.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypedDict

from packer._util.columns import blocks_of
from packer._util.files import tree_bytes, write_file_synced
from packer._version import __version__
from packer.conversion.commit import output_error, write_pack
from packer.conversion.options import ConvertOptions
from packer.conversion.plan import Plan
from packer.conversion.plan_store import load_plan_dir, save_plan_dir
from packer.conversion.report import ConvertReport, build_report
from packer.conversion.result import ShardResult
from packer.conversion.resume import (
    RECORD_ERRORS,
    RESUME_DIR,
    Record,
    hash_threads,
    intact,
    prepare_resume,
    read_records,
    save_result,
)
from packer.conversion.runner import run_planned
from packer.errors import OutputError, PackError, UsageError
from packer.format.staging import Staging, partial_path
from packer.progress import NoProgress, Progress
from packer.run.cluster import ExecutorLike
from packer.run.pools import default_workers

PART_FILE = "part.json"
PART_FORMAT = "packer-part-v1"
RECORDS_DIR = "records"
ARGUMENTS = "arguments.json"  # in a plan folder: the convert arguments, for the update state
#: Libraries whose version shapes the bytes of a pack (and packer itself).
_VERSIONED = ("numpy", "pillow", "h5py", "lmdb", "pyarrow")


class PartDoc(TypedDict):
    """A part's ``part.json``: which plan, which part, which shards, written by what."""

    format: str
    plan: str  # the plan's digest
    part: int
    parts: int
    shards: list[int]  # [first, stop)
    versions: dict[str, str]


class PlanSummary(TypedDict):
    """What ``pack plan`` saved (``pack plan --json``)."""

    plan: str
    digest: str
    samples: int
    shards: int
    classes: int
    source_bytes: int


def versions() -> dict[str, str]:
    """Versions of packer and the libraries that write its files, as parts record them."""
    found = {"packer": __version__}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def parse_part(text: str) -> tuple[int, int]:
    """``"3/16"`` -> (3, 16): part 3 of 16, numbered from 0 (``$SLURM_ARRAY_TASK_ID/$COUNT``
    with ``--array=0-15``)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise UsageError(f"--part {text!r} must be I/N with 0 <= I < N, e.g. 3/16")
    return int(m.group(1)), int(m.group(2))


def part_shards(num_shards: int, part: int, parts: int) -> range:
    """The contiguous block of global shards that part ``part`` of ``parts`` writes."""
    return range(num_shards * part // parts, num_shards * (part + 1) // parts)


def convert_part(
    plan_dir: str | os.PathLike[str],
    part: str | tuple[int, int],
    out: str | os.PathLike[str],
    *,
    workers: int | None = None,
    executor: ExecutorLike | None = None,
    resume: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> PartDoc:
    """Write part ``I/N`` of the plan in ``plan_dir`` into the folder ``out``; return its
    ``part.json`` document. Resumable like a convert; the folder appears only when complete."""
    progress = progress or NoProgress()
    index, count = parse_part(part) if isinstance(part, str) else part
    if not 0 <= index < count:
        raise UsageError(f"--part {index}/{count} must have 0 <= I < N")
    plan, digest = load_plan_dir(Path(plan_dir), lazy=True)
    workers = default_workers(plan.decodes) if workers is None else workers
    shards = part_shards(len(plan.shard_bounds), index, count)
    out_path = Path(out)
    total = sum(plan.shard_bounds[k][1] - plan.shard_bounds[k][0] for k in shards)
    try:
        with Staging(out_path, force=force, keep_partial=resume, marker=PART_FILE) as staging:
            template = plan.template(staging.path)
            done = prepare_resume(staging.path, digest)  # the plan's digest says it all
            records = dict(done)
            progress.start(total, f"part {index}/{count} -> {plan.backend_name}")
            try:
                for result in run_planned(
                    plan, template, progress, done, workers, executor, shards
                ):
                    if records.get(result.shard) is not result:
                        save_result(staging.path / RESUME_DIR, result)
            finally:
                progress.finish()
            (staging.path / RESUME_DIR / "plan").unlink()
            (staging.path / RESUME_DIR).rename(staging.path / RECORDS_DIR)
            doc: PartDoc = {
                "format": PART_FORMAT,
                "plan": digest,
                "part": index,
                "parts": count,
                "shards": [shards.start, shards.stop],
                "versions": versions(),
            }
            write_file_synced(
                staging.path / PART_FILE,
                (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode(),
            )
            staging.commit()
    except OSError as exc:
        raise output_error(out_path, exc) from None
    return doc


def merge(
    plan_dir: str | os.PathLike[str],
    parts: Sequence[str | os.PathLike[str]],
    dst: str | os.PathLike[str],
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> ConvertReport:
    """Assemble the parts of the plan in ``plan_dir`` into the pack ``dst``, a local folder (see
    the module docstring). Every check runs before DST is touched; the parts are left as they
    were."""
    started = time.perf_counter()
    progress = progress or NoProgress()
    plan, digest = load_plan_dir(Path(plan_dir), lazy=True)
    found = _check_parts(plan, digest, [Path(p) for p in parts])
    dst_path = Path(dst)
    # The data files' sha256 are checked in threads while the index is written (hashing releases
    # the GIL): the staged pack is only committed once every one matched, so DST is never touched
    # by a merge that fails.
    hasher = cf.ThreadPoolExecutor(hash_threads())
    try:
        checks = [hasher.submit(intact, record.data_file, folder) for folder, record in found]
        with Staging(dst_path, force=force) as staging:
            progress.start(
                len(plan.shard_bounds),
                f"merge {len(parts)} part(s) -> {dst_path.name}",
                unit="shards",
            )
            try:
                for folder, record in found:
                    name = record.data_file.name
                    _link_or_copy(folder / name, staging.path / name)
                    progress.advance(1, record.data_file.bytes)
            finally:
                progress.finish()
            collected = write_pack(
                staging.path,
                plan,
                (_load(record) for _, record in found),
                arguments=_arguments(Path(plan_dir)),
            )
            for (folder, record), check in zip(found, checks, strict=True):
                if not check.result():
                    raise PackError(
                        f"{folder / record.data_file.name}: does not match its recorded sha256 "
                        "(damaged or tampered); convert this part again"
                    )
            pack_bytes = tree_bytes(staging.path)
            staging.commit()
    except OSError as exc:
        raise output_error(dst_path, exc) from None
    finally:
        hasher.shutdown(cancel_futures=True)
    return build_report(
        dst_path, plan.backend_name, plan.scan, collected, started, pack_bytes=pack_bytes
    )


def _arguments(plan_dir: Path) -> dict[str, Any] | None:
    """The convert arguments ``pack plan`` recorded (None from an older packer: no state then)."""
    try:
        document = json.loads((plan_dir / ARGUMENTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _load(record: Record) -> ShardResult:
    try:
        return record.load()
    except RECORD_ERRORS as exc:
        raise PackError(
            f"{record.path.with_suffix('.npz')}: unreadable shard record ({exc}); convert this "
            "part again"
        ) from None


def _check_parts(plan: Plan, digest: str, folders: list[Path]) -> list[tuple[Path, Record]]:
    """Every shard of the plan exactly once, in shard order, from finished parts of this plan,
    each with a data file of its recorded size (their sha256 are the caller's to check)."""
    mine = versions()
    found: dict[int, tuple[Path, Record]] = {}
    for folder in folders:
        doc = _read_part(folder)
        if doc.get("plan") != digest:
            raise UsageError(
                f"{folder}: is a part of another plan (or other options); convert it again from "
                "this plan"
            )
        if doc.get("versions") != mine:
            raise UsageError(
                f"{folder}: was written with {doc.get('versions')}, this merge runs {mine}; "
                "use the same packer and library versions for every part"
            )
        first, stop = doc["shards"]
        results = {r.shard: r for r in read_records(folder / RECORDS_DIR, folder)}
        for k in range(first, stop):
            result = results.get(k)
            if result is None:
                raise PackError(
                    f"{folder}: shard {k} is missing or its data file does not have its recorded "
                    "size (damaged or tampered); convert this part again"
                )
            if k in found:
                raise UsageError(
                    f"{folder}: shard {k} is also in {found[k][0]}; pass each part once"
                )
            found[k] = (folder, result)
    missing = [k for k in range(len(plan.shard_bounds)) if k not in found]
    if missing:
        raise UsageError(
            f"shards {_ranges(missing)} of {len(plan.shard_bounds)} are in none of the parts given; "
            "pass every part (a part still being written is not finished)"
        )
    return [found[k] for k in range(len(plan.shard_bounds))]


def _read_part(folder: Path) -> dict[str, Any]:
    try:
        doc = json.loads((folder / PART_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        busy = partial_path(folder).exists()
        raise UsageError(
            f"{folder}: not a finished part (no {PART_FILE})"
            + ("; it is still being written" if busy else "; run `pack convert --plan ... --part`")
        ) from None
    except (OSError, ValueError) as exc:
        raise PackError(
            f"{folder / PART_FILE}: unreadable ({exc}); convert this part again"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != PART_FORMAT:
        raise PackError(f"{folder / PART_FILE}: not a packer part; convert this part again")
    return doc


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link on the same filesystem (no data copied, the part stays intact), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _ranges(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    out: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(out)


def save_plan(
    src: str | os.PathLike[str],
    plan_dir: str | os.PathLike[str],
    chosen: ConvertOptions,
    *,
    force: bool = False,
) -> PlanSummary:
    """``pack plan``: scan and stat SRC once and save the plan; return a summary."""
    from packer.conversion.plan import make_plan

    folder = Path(plan_dir)
    if folder.exists() and not force:
        raise OutputError(f"{folder}: already exists; pass --force to replace it")
    if folder.exists() and not (folder / "plan.json").is_file():
        raise OutputError(
            f"{folder}: exists and is not a plan; --force only replaces plans, remove it yourself"
        )
    work = folder.with_name(f".{folder.name}.partial")  # the columns are written in place
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        plan = make_plan(src, chosen, workdir=work).with_bounds()
        digest = save_plan_dir(plan, work)
        for derived in ("cut_points.npy", "mtimes.npy"):  # not part of the plan
            (work / derived).unlink(missing_ok=True)
        arguments = chosen.recorded()  # for the merged pack's update state
        write_file_synced(work / ARGUMENTS, (json.dumps(arguments, sort_keys=True) + "\n").encode())
        summary: PlanSummary = {
            "plan": str(folder),
            "digest": digest,
            "samples": len(plan.scan.paths),
            "shards": len(plan.shard_bounds),
            "classes": len(plan.scan.classes),
            "source_bytes": int(sum(int(b.sum()) for b in blocks_of(plan.file_sizes))),
        }
        if folder.exists():
            shutil.rmtree(folder)
        work.rename(folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return summary
