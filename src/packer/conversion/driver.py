"""Folder tree -> pack, as a short driver: plan -> check (a dry run) or write -> commit.

Determinism: the plan (:mod:`packer.conversion.plan`) is a pure function of the scanned file list,
file sizes and :class:`~packer.conversion.options.ConvertOptions`, and each shard is written by
the same function whichever process runs it, so ``--workers N``, any executor, or parts merged
later give output byte-identical to ``--workers 1``. Memory: each shard's index rows are streamed
to disk as the shard completes.

Where the jobs live: :mod:`~packer.conversion.plan` (what to write), :mod:`~packer.conversion.shard`
(writing one shard), :mod:`~packer.conversion.runner` (where shards run), :mod:`~packer.conversion.commit`
(index, manifest, commit), :mod:`~packer.conversion.resume` (``--resume`` records),
:mod:`~packer.conversion.update` (``--update``), :mod:`~packer.conversion.parts` (SLURM-style parts
and ``pack merge``). This package sees local paths only: :mod:`packer.api` resolves a URL first.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from packer._util.files import tree_bytes
from packer.backends.registry import get_backend_class
from packer.conversion.commit import index_results, output_error, write_pack
from packer.conversion.findings import duplicates_in
from packer.conversion.job import ShardJob
from packer.conversion.options import ConvertOptions
from packer.conversion.plan import Plan, make_plan
from packer.conversion.report import Collected, ConvertReport, build_report, up_to_date_report
from packer.conversion.result import ShardResult
from packer.conversion.resume import RESUME_DIR, plan_digest, prepare_resume, reusable, save_result
from packer.conversion.runner import run_inline, run_planned
from packer.conversion.state import refresh_mtimes
from packer.conversion.update import Update, link_reused, plan_update
from packer.errors import UsageError
from packer.format.staging import Staging, check_destination
from packer.progress import NoProgress, Progress
from packer.run.cluster import ExecutorLike
from packer.run.pools import default_workers

#: the folder of the staging pack that holds the plan's columns while it is written
PLAN_WORKDIR = ".packer-plan"


@dataclass(frozen=True)
class RunSettings:
    """How one run goes, apart from what it writes: never recorded, never changes the bytes."""

    workers: int | None = None
    executor: ExecutorLike | None = None
    force: bool = False
    resume: bool = False
    dry_run: bool = False
    update: bool = False
    checksum: bool = False
    progress: Progress = field(default_factory=NoProgress)

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"--workers {self.workers} must be at least 1")
        if self.update and (self.resume or self.dry_run):
            raise UsageError("--update does not go with --resume or --dry-run")
        if self.checksum and not self.update:
            raise UsageError("--checksum goes with --update (or `pack status`)")


def convert(src: Path, dst: Path, chosen: ConvertOptions, run: RunSettings) -> ConvertReport:
    """Pack the tree ``src`` (or the files ``chosen.from_list`` names under it) into ``dst``, a
    local folder (see :func:`packer.convert` for every option)."""
    started = time.perf_counter()
    force = run.force or run.update  # an update replaces the pack it brings up to date
    get_backend_class(chosen.format)  # an unknown or broken format is the first thing to report
    if src.is_dir() and dst.resolve().is_relative_to(src.resolve()):
        raise UsageError(f"{dst}: is inside SRC {src}; choose a DST outside the source tree")
    if not run.dry_run:
        check_destination(dst, force=force)  # fail fast, before a long scan
    with contextlib.ExitStack() as stack:
        staging = None
        if not run.dry_run:  # the plan's columns go in the staging folder: one folder to clean up
            staging = stack.enter_context(Staging(dst, force=force, keep_partial=run.resume))
        workdir = plan_workdir(staging)
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        plan = make_plan(src, chosen, keep_going=run.dry_run, workdir=workdir)
        shards = _Shards(plan, run)
        if run.update:
            plan = shards.plan  # with its boundaries
            shards.changes = plan_update(plan, dst, chosen.recorded(), checksum=run.checksum)
            if shards.changes.changes.up_to_date:
                return _already_up_to_date(dst, shards.plan, shards.changes, started)
        if staging is None:
            return _check(dst, shards, workdir, started)
        try:
            collected, resumed = _write(staging, shards, chosen)
            shutil.rmtree(workdir)  # the plan's columns are no part of the pack
            pack_bytes = tree_bytes(staging.path)
            staging.commit()
        except OSError as exc:
            raise output_error(dst, exc) from None
    report = build_report(
        dst, plan.backend_name, plan.scan, collected, started, pack_bytes=pack_bytes
    )
    report.resumed_shards = resumed
    if shards.changes is not None:
        report.update = shards.changes.changes.to_dict()
    return report


class _Shards:
    """Where a convert's shards come from: written inline (cut while reading), on a pool or an
    executor (planned boundaries), or reused from an interrupted run or the pack being updated."""

    def __init__(self, plan: Plan, run: RunSettings) -> None:
        self.workers = run.workers or default_workers(plan.decodes)
        if run.executor is not None or self.workers > 1 or run.update:
            plan = plan.with_bounds()  # workers need their boundaries up front
        self.plan, self.run = plan, run
        self.changes: Update | None = None

    def results(self, template: ShardJob, done: Mapping[int, ShardResult]) -> Iterator[ShardResult]:
        progress = self.run.progress
        if self.plan.bounds is None:  # one process: cut by bytes while reading, no stat pass first
            yield from run_inline(template, progress, dict(done), reusable)
        else:
            can_reuse = (lambda record, job: True) if self.changes is not None else reusable
            yield from run_planned(
                self.plan, template, progress, done, self.workers, self.run.executor,
                reusable=can_reuse,
            )  # fmt: skip


def _already_up_to_date(dst: Path, plan: Plan, changes: Update, started: float) -> ConvertReport:
    if changes.changes.refreshed:
        refresh_mtimes(dst, np.asarray(plan.file_mtimes))
    return up_to_date_report(dst, changes.changes, started)


def _check(dst: Path, shards: _Shards, workdir: Path, started: float) -> ConvertReport:
    """A dry run: read and check every file as a convert would, write nothing beside DST."""
    plan, progress = shards.plan, shards.run.progress
    scan = plan.scan
    collected = Collected(
        len(scan.classes), skipped=list(scan.skipped), findings=list(scan.findings)
    )
    progress.start(len(scan), f"check {scan.root.name}")
    checked = workdir / "checked"  # an index of what would be packed, for the duplicates
    try:
        results = shards.results(plan.template(dst.parent, dry_run=True), {})
        index_results(checked, results, collected, empty="", key_order=False)
    finally:
        progress.finish()
    if collected.num_samples:
        collected.findings.extend(duplicates_in(checked, scan))
    return build_report(
        dst, plan.backend_name, scan, collected, started, pack_bytes=0, dry_run=True
    )


def _write(staging: Staging, shards: _Shards, chosen: ConvertOptions) -> tuple[Collected, int]:
    """Write (or reuse) every shard into the staging folder and index it; returns what was
    collected and how many shards were reused."""
    plan, changes, progress = shards.plan, shards.changes, shards.run.progress
    template = plan.template(staging.path)
    done: Mapping[int, ShardResult]
    if changes is not None:
        link_reused(changes, staging.path)
        done = changes.reuse  # built a shard at a time as the index is written
    else:
        digest = plan_digest(template, {"extra": [plan.created_by, plan.on_error, plan.ext_names]})
        done = prepare_resume(staging.path, digest)
    records = dict(done) if changes is None else {}
    resumed = 0

    def record(result: ShardResult) -> None:
        nonlocal resumed
        if changes is not None:
            resumed += result.shard in changes.kept
        elif records.get(result.shard) is result:
            resumed += 1
        else:
            save_result(staging.path / RESUME_DIR, result)

    progress.start(len(plan.scan), f"{plan.scan.root.name} -> {plan.backend_name}")
    try:
        results = shards.results(template, done)
        collected = write_pack(staging.path, plan, results, record, arguments=chosen.recorded())
    finally:
        progress.finish()
    return collected, resumed


def plan_workdir(staging: Staging | None) -> Path:
    """A new folder for the plan's per-sample columns (see :mod:`packer._util.columns`): inside the
    staging folder, which has room for the pack and which cluster workers see too (a dry run,
    which writes nothing beside DST, uses the temporary folder)."""
    if staging is None:
        return Path(tempfile.mkdtemp(prefix="packer-plan-"))
    workdir = staging.path / PLAN_WORKDIR
    shutil.rmtree(workdir, ignore_errors=True)  # left by an interrupted run (--resume)
    workdir.mkdir()
    return workdir
