"""Folder tree -> pack: plan, write shards (wherever they run), index, manifest, commit.

Determinism: the plan (:mod:`packer.conversion.plan`) is a pure function of the scanned file list, file
sizes and options, and each shard is written by the same function whichever process runs it, so
``--workers N``, any executor, or parts merged later give output byte-identical to ``--workers 1``.
Memory: each shard's index rows are streamed to disk as the shard completes.

Where the jobs live: :mod:`packer.conversion.plan` (what to write), :mod:`packer.conversion.shard` (writing one
shard), :mod:`packer.run.pools` (where shards run), :mod:`packer.conversion.resume` (``--resume`` records),
:mod:`packer.conversion.findings` (warnings that need the samples' bytes), :mod:`packer.conversion.parts` (SLURM-style
parts and ``pack merge``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from packer._util.files import sha256_file, tree_bytes
from packer.backends.registry import DEFAULT_FORMAT, get_backend_class, make_backend
from packer.conversion.findings import duplicates_in
from packer.conversion.plan import Plan, make_plan
from packer.conversion.report import Collected, ConvertReport, build_report, up_to_date_report
from packer.conversion.resume import (
    RESUME_DIR,
    plan_digest,
    prepare_resume,
    remove_strays,
    reusable,
    save_result,
)
from packer.conversion.shard import ShardJob, ShardResult
from packer.conversion.state import StateRecorder, refresh_mtimes
from packer.conversion.update import Update, link_reused, plan_update, recorded_arguments
from packer.errors import OutputError, SourceError, UsageError
from packer.format.index import INDEX_FILES, Index, IndexWriter
from packer.format.keys import safe_relative
from packer.format.manifest import Manifest
from packer.format.staging import Staging, check_destination
from packer.progress import NoProgress, Progress
from packer.run.cluster import as_executor
from packer.run.pools import Reusable, default_workers, local_pool, run_inline, run_on
from packer.source.omissions import MAX_LISTED
from packer.source.scanner import DEFAULT_SYMLINKS
from packer.storage.store import is_url
from packer.storage.upload import refuse_url, to_url, update_at_url

if TYPE_CHECKING:
    from packer.backends.base import Backend
    from packer.images.transforms import Transform  # imports Pillow: only where a transform runs


#: the folder of the staging pack that holds the plan's columns while it is written
PLAN_WORKDIR = ".packer-plan"


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    format: str = DEFAULT_FORMAT,
    *,
    options: Mapping[str, Any] | None = None,
    shard_size: int | str | None = None,
    samples_per_shard: int | None = None,
    workers: int | None = None,
    executor: cf.Executor | Any | None = None,
    on_error: str = "fail",
    validate: str = "quick",
    force: bool = False,
    extensions: str | Iterable[str] | None = None,
    symlinks: str = DEFAULT_SYMLINKS,
    transform: Transform | None = None,
    max_pixels: int | None = None,
    resume: bool = False,
    dry_run: bool = False,
    from_list: str | os.PathLike[str] | None = None,
    classes_file: str | os.PathLike[str] | None = None,
    cut: str = "content",
    update: bool = False,
    checksum: bool = False,
    progress: Progress | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> ConvertReport:
    """Pack the class-per-folder tree ``src`` into a new pack at ``dst`` (or, with ``from_list``,
    the files a ``path,label`` list names under ``src``).

    Args:
        src: folder with one sub-folder per class (ImageFolder layout).
        dst: the pack folder to create; must not exist unless ``force``.
        format: a backend name (see ``pack formats``).
        options: backend options (``-o key=value`` on the CLI).
        shard_size: cut data files at about this many source bytes (``"512MB"`` or an int).
            With neither this nor ``samples_per_shard``: 1 GiB and at most
            :func:`~packer.conversion.cuts.default_samples_per_shard` samples.
        samples_per_shard: cut data files after this many samples.
        workers: processes writing shards in parallel on this machine (None: chosen from the
            CPUs this process may use, see :func:`packer.run.pools.default_workers`); output is
            identical for any value. With more than one, the files are stat'ed first to fix the shard
            boundaries; a tree of one shard is still written in this process.
        executor: run shard writing on this :class:`concurrent.futures.Executor` or
            ``distributed.Client`` instead (workers must see SRC and DST at the same paths).
            Output is identical.
        on_error: ``fail`` stops at the first bad file; ``skip`` leaves it out and records why.
        validate: ``none``, ``quick`` (headers and trailers) or ``full`` (decode every image).
        force: replace an existing pack at ``dst`` (only after the new one is complete).
        extensions: which files are samples: None for ImageFolder's image extensions, a list
            (``"png,jpg"``), changes to it (``"+gif,-tif"``) or ``"*"`` for every file (see
            :func:`packer.source.scanner.parse_extensions`). Only image files are validated.
        symlinks: ``inside`` (default: follow links whose target is inside SRC), ``follow``
            (all, each one leaving SRC named in a warning) or ``skip``.
        transform: decode/resize/re-encode at convert time (see :mod:`packer.images.transforms`); None
            (the default) stores every source file's bytes unchanged. Without ``reencode`` the
            pack stores decoded pixels, which only ``stores_pixels`` backends accept.
        max_pixels: refuse images with more pixels (decompression bombs), checked from the header
            by ``quick`` validation and enforced while decoding; None for Pillow's default
            (89,478,485). Recorded in the manifest for ``verify --deep``.
        resume: continue an interrupted conversion to the same DST from its finished shards
            (each one checked by sha256); the result is byte-identical to an uninterrupted run.
        dry_run: scan, read and check every file and report every bad or ignored one; write
            nothing (``report.skipped`` lists the bad files whatever ``on_error`` is).
        from_list: a CSV/TSV of ``path,label`` rows, paths relative to ``src``, packed in row
            order (see :mod:`packer.source.listing`).
        classes_file: with ``from_list``: class names, one per line (line i is label i).
        cut: ``content`` (default): shards end at content-defined points within the limits, so
            a file added or removed moves about one boundary; ``fixed``: every shard is filled
            to the limit (see :mod:`packer.conversion.cuts`).
        update: bring the pack at ``dst`` up to date with ``src``: nothing is written when
            nothing changed, else only the shards whose content changed are written (the others
            are linked from the old pack) and the result is byte-identical to a fresh convert.
            A missing pack is written; changed options rebuild it all (see :mod:`packer.conversion.update`).
        checksum: with ``update``: compare file contents (size and CRC-32) instead of mtimes.
        progress: receives progress events (see :mod:`packer.progress`).
        storage_options: for a DST that is a URL (``s3://bucket/train.pack``): passed to fsspec.
            The pack is built locally and uploaded, manifest last (see :mod:`packer.storage.upload`).
    """
    if is_url(dst):
        given = dict(locals())  # the arguments, as given
        if resume:
            refuse_url("--resume", os.fspath(dst))
        if update:
            report = update_at_url(
                os.fspath(dst),
                lambda local: convert(**{**given, "dst": local}),
                storage_options=storage_options,
            )
            report.url = os.fspath(dst)
            return report
        report = to_url(
            os.fspath(dst),
            lambda local: convert(**{**given, "dst": local, "force": False}),
            force=force,
            storage_options=storage_options,
        )
        report.url = os.fspath(dst)
        return report
    started = time.perf_counter()
    progress = progress or NoProgress()
    if workers is not None and workers < 1:
        raise UsageError(f"--workers {workers} must be at least 1")
    if update and (resume or dry_run):
        raise UsageError("--update does not go with --resume or --dry-run")
    if checksum and not update:
        raise UsageError("--checksum goes with --update (or `pack status`)")
    arguments = recorded_arguments(
        format, options=options, shard_size=shard_size,
        samples_per_shard=samples_per_shard, on_error=on_error, validate=validate,
        extensions=extensions, symlinks=symlinks, transform=transform, max_pixels=max_pixels,
        from_list=from_list, classes_file=classes_file, cut=cut,
    )  # fmt: skip
    force = force or update  # an update replaces the pack it brings up to date
    src_path, dst_path = Path(src), Path(dst)
    get_backend_class(format)  # an unknown or broken format is the first thing to report
    if src_path.is_dir() and dst_path.resolve().is_relative_to(src_path.resolve()):
        raise UsageError(
            f"{dst_path}: is inside SRC {src_path}; choose a DST outside the source tree"
        )
    if not dry_run:
        check_destination(dst_path, force=force)  # fail fast, before a long scan
    with contextlib.ExitStack() as stack:
        staging = None
        if not dry_run:  # the plan's columns go in the staging folder: one folder to clean up
            staging = stack.enter_context(Staging(dst_path, force=force, keep_partial=resume))
        workdir = plan_workdir(staging)
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        plan = make_plan(
            src_path,
            format,
            options=options,
            shard_size=shard_size,
            samples_per_shard=samples_per_shard,
            on_error=on_error,
            validate=validate,
            extensions=extensions,
            symlinks=symlinks,
            transform=transform,
            max_pixels=max_pixels,
            keep_going=dry_run,
            from_list=from_list,
            classes_file=classes_file,
            cut=cut,
            workdir=workdir,
        )
        if workers is None:
            workers = default_workers(plan.decodes)
        if executor is not None or workers > 1 or update:
            plan = plan.with_bounds()  # workers need their boundaries up front
        changes: Update | None = None
        if update:
            changes = plan_update(plan, dst_path, arguments, checksum=checksum)
            if changes.changes.up_to_date:
                if changes.changes.refreshed:
                    assert plan.mtimes is not None
                    refresh_mtimes(dst_path, np.asarray(plan.mtimes))
                return up_to_date_report(dst_path, changes.changes, started)

        def run_shards(
            template: ShardJob, done: Mapping[int, ShardResult]
        ) -> Iterator[ShardResult]:
            if plan.bounds is None:  # one process: cut by bytes while reading, no stat pass first
                yield from run_inline(template, progress, dict(done), reusable)
            else:
                yield from run_planned(
                    plan, template, progress, done, workers, executor, reusable=can_reuse
                )

        can_reuse = (lambda record, job: True) if changes is not None else reusable

        scan = plan.scan
        if dry_run:
            collected = Collected(
                len(scan.classes), skipped=list(scan.skipped), findings=list(scan.findings)
            )
            progress.start(len(scan), f"check {scan.root.name}")
            checked = workdir / "checked"  # an index of what would be packed, for the duplicates
            try:
                index_results(
                    checked,
                    run_shards(plan.template(dst_path.parent, dry_run=True), {}),
                    collected,
                    empty="",
                    key_order=False,
                )
            finally:
                progress.finish()
            if collected.num_samples:
                collected.findings.extend(duplicates_in(checked, scan))
            return build_report(
                dst_path, plan.backend_name, scan, collected, started, pack_bytes=0, dry_run=True
            )
        resumed = 0
        assert staging is not None
        try:
            template = plan.template(staging.path)
            done: Mapping[int, ShardResult]
            if changes is not None:
                link_reused(changes, staging.path)
                done = changes.reuse  # built a shard at a time as the index is written
            else:
                digest = plan_digest(
                    template, {"extra": [plan.created_by, plan.on_error, plan.ext_names]}
                )
                done = prepare_resume(staging.path, digest)
            records = dict(done) if changes is None else {}

            def record(result: ShardResult) -> None:
                nonlocal resumed
                if changes is not None:
                    resumed += result.shard in changes.kept
                elif records.get(result.shard) is result:
                    resumed += 1
                else:
                    save_result(staging.path / RESUME_DIR, result)

            progress.start(len(scan), f"{scan.root.name} -> {plan.backend_name}")
            try:
                collected = write_pack(
                    staging.path, plan, run_shards(template, done), record, arguments=arguments
                )
            finally:
                progress.finish()
            shutil.rmtree(workdir)  # the plan's columns are no part of the pack
            pack_bytes = tree_bytes(staging.path)
            staging.commit()
        except OSError as exc:
            raise output_error(dst_path, exc) from None
        report = build_report(
            dst_path, plan.backend_name, scan, collected, started, pack_bytes=pack_bytes
        )
        report.resumed_shards = resumed
        if changes is not None:
            report.update = changes.changes.to_dict()
        return report


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


def run_planned(
    plan: Plan,
    template: ShardJob,
    progress: Progress,
    done: Mapping[int, ShardResult],
    workers: int,
    executor: cf.Executor | Any | None,
    shards: Iterable[int] | None = None,
    reusable: Reusable = reusable,
) -> Iterator[ShardResult]:
    """Write the planned shards (all, or ``shards``) on ``executor``, a local pool of ``workers``
    processes, or in this process; yield them in shard order (those in ``done`` that ``reusable``
    accepts are not written again)."""
    jobs = plan.jobs(template, shards)
    if executor is not None:  # it schedules every shard itself; results come in shard order
        for result in run_on(
            as_executor(executor), jobs, progress, done, reusable, in_flight=len(jobs)
        ):
            if not template.dry_run:
                _check_returned(Path(template.out_dir), result)
            yield result
    elif workers > 1 and len(jobs) > 1:  # a pool for one shard would only cost its start-up
        workers = min(workers, len(jobs))
        with local_pool(workers) as pool:
            yield from run_on(pool, jobs, progress, done, reusable, in_flight=2 * workers)
    else:
        with cf.ThreadPoolExecutor(1) as inline:  # one at a time, in order, in this process
            yield from run_on(inline, jobs, progress, done, reusable, in_flight=1)


def _check_returned(out_dir: Path, result: ShardResult) -> None:
    """A shard written elsewhere (a cluster task, maybe run twice) is only trusted once its data
    file here has the size and sha256 the task reported."""
    path = out_dir / result.data_file.name
    if not path.is_file() or sha256_file(path) != result.data_file.sha256:
        raise OutputError(
            f"{path}: missing or not what its task wrote (sha256 differs); do the workers see "
            "the same filesystem at the same path? Nothing was committed"
        )


def write_pack(
    root: Path,
    plan: Plan,
    results: Iterable[ShardResult],
    on_result: Callable[[ShardResult], None] | None = None,
    *,
    arguments: dict[str, Any] | None = None,
) -> Collected:
    """Index the shard results (in shard order) and write the manifest into ``root``, where the
    data files already are, and the update state (:mod:`packer.conversion.state`) when ``arguments`` (the
    convert's, for ``pack status``) are given. Shared by ``convert`` and ``pack merge``: the
    same results give the same bytes."""
    scan = plan.scan
    collected = Collected(
        len(scan.classes), skipped=list(scan.skipped), findings=list(scan.findings)
    )
    state = StateRecorder(root)
    results = _calling(state.add, results)
    if on_result is not None:
        results = _calling(on_result, results)
    dtypes = index_results(
        root,
        results,
        collected,
        empty=f"{scan.root}: every image was skipped; nothing to pack (see the errors above)",
    )
    collected.findings.extend(duplicates_in(root, scan))
    remove_strays(root, {d.name for d in collected.data_files})
    backend = make_backend(plan.backend_name, plan.backend_options, plan.pixel_shape)
    finish_pack(root, backend, _manifest(plan, collected, dtypes))
    state.save(root, plan, arguments)
    return collected


def _calling(
    on_result: Callable[[ShardResult], None], results: Iterable[ShardResult]
) -> Iterator[ShardResult]:
    for result in results:
        on_result(result)
        yield result


def index_results(
    root: Path,
    results: Iterable[ShardResult],
    collected: Collected,
    *,
    empty: str,
    unique_keys: bool = False,
    key_order: bool = True,
) -> dict[str, str]:
    """Append each shard's rows (in shard order) to the pack index in ``root`` and to
    ``collected``, then finish the index and return its dtypes (for the manifest); none at all is
    a SourceError saying ``empty`` (unless ``empty`` is ""). On any error the unfinished index is
    closed before it propagates. Without ``key_order`` (a dry run's index, only scanned for
    duplicates) the key sort is left out."""
    index = IndexWriter(root)
    try:
        for r in results:
            index.append(r.labels, r.locations, r.crc32, r.extension_ids, r.key_blob, r.key_lengths)
            collected.add(r)
        if index.count == 0 and empty:
            raise SourceError(empty)
        index.finish(unique_keys=unique_keys, key_order=key_order)
    except BaseException:
        index.abort()
        raise
    return index.dtypes


def finish_pack(root: Path, backend: Backend[Any], manifest: Manifest) -> None:
    """Record the index files' digests, write the backend's files for other loaders (recorded
    too) and then the manifest, which makes ``root`` a pack."""
    manifest.index_sha256.update(index_digests(root))
    for name, data in sorted(backend.sidecar_files(manifest, Index(root, manifest)).items()):
        target = root / safe_relative(name)  # a plugin's names stay inside the pack
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        manifest.index_sha256[name] = hashlib.sha256(data).hexdigest()
    manifest.write(root)


def _manifest(plan: Plan, collected: Collected, index_dtypes: dict[str, str]) -> Manifest:
    scan = plan.scan
    return Manifest(
        backend_name=plan.backend_name,
        options=plan.backend_options,
        classes=scan.classes,
        class_counts=collected.counts.tolist(),
        num_samples=collected.num_samples,
        payload_bytes=collected.payload_bytes,
        data_files=collected.data_files,
        extensions=plan.ext_names,
        index_sha256={},
        index_dtypes=index_dtypes,
        source={
            "files": len(scan) + len(scan.skipped),
            "bytes": collected.source_bytes,
            "ignored_files": scan.ignored.count,
            "ignored_by_reason": dict(sorted(scan.ignored.by_reason.items())),
        },
        created_by=plan.created_by,
        skipped=[s.to_dict() for s in sorted(collected.skipped, key=lambda s: s.path)],
        ignored=[s.to_dict() for s in scan.ignored.listed],
        warnings=[w.to_dict() for w in collected.findings[:MAX_LISTED]],
        transform=plan.transform,
        sample_shape=list(plan.pixel_shape) if plan.pixel_shape is not None else None,
    )


def output_error(dst: Path, exc: OSError) -> OutputError:
    """Source read errors are handled per file; any other OSError is the output side failing."""
    where = f" ({exc.filename})" if exc.filename else ""
    hint = (
        "free some disk space"
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
        else "check the destination"
    )
    return OutputError(
        f"{dst}: writing the pack failed: {exc.strerror or exc}{where}; {hint}. "
        "Nothing was written and any previous pack is untouched"
    )


def index_digests(root: Path) -> dict[str, str]:
    return {name: sha256_file(root / name) for name in INDEX_FILES}
