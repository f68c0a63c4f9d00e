"""The library's front door: everything the ``pack`` command can do, as Python functions.

The CLI calls only these. This is also the edge where storage is resolved: a URL DST is built in
a local folder and uploaded (:mod:`packer.storage.upload`), so the write path
(:mod:`packer.conversion`) only ever sees local paths, as zarr's ``make_store_path`` resolves a
store before an array sees it. Importing this module loads the converter and reader (numpy, not
Pillow or torch).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packer._version import __version__
from packer.backends.registry import DEFAULT_FORMAT, FormatInfo, list_formats
from packer.bench.report import FOLDER, METRICS, BenchReport, recommendation_line
from packer.bench.run import bench
from packer.check.verify import Problem, VerifyReport, verify_pack
from packer.conversion import driver, parts, update
from packer.conversion.driver import RunSettings
from packer.conversion.options import ConvertOptions
from packer.conversion.parts import PartDoc, PlanSummary, convert_part
from packer.conversion.report import ConvertReport
from packer.conversion.samples import convert_samples
from packer.conversion.update import Changes
from packer.images.transforms import Transform
from packer.progress import NoProgress, Progress
from packer.read.describe import InspectDoc, inspect_pack
from packer.read.extract import ExtractReport, extract, read_key_list
from packer.read.open import open_pack
from packer.read.pack import Pack, Sample
from packer.read.stats import PackStats, pack_stats
from packer.run.cluster import EXECUTORS, ExecutorLike, dask_executor
from packer.run.pools import preload_workers
from packer.source.scanner import DEFAULT_SYMLINKS
from packer.storage.stage import StageReport, stage
from packer.storage.store import is_url
from packer.storage.upload import refuse_url, to_url, update_at_url

__all__ = [
    "EXECUTORS",
    "FOLDER",
    "METRICS",
    "BenchReport",
    "Changes",
    "ConvertOptions",
    "ConvertReport",
    "ExtractReport",
    "FormatInfo",
    "InspectDoc",
    "PackStats",
    "PartDoc",
    "PlanSummary",
    "RunSettings",
    "Pack",
    "Problem",
    "Sample",
    "StageReport",
    "Transform",
    "VerifyReport",
    "__version__",
    "bench",
    "contact_sheet",
    "convert",
    "convert_part",
    "convert_samples",
    "dask_executor",
    "extract",
    "inspect_pack",
    "list_formats",
    "merge",
    "open_pack",
    "pack_stats",
    "preload_workers",
    "prepare_command_process",
    "read_key_list",
    "recommendation_line",
    "save_plan",
    "save_plan_with",
    "stage",
    "status",
    "verify_pack",
]


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    format: str = DEFAULT_FORMAT,
    *,
    options: Mapping[str, Any] | None = None,
    shard_size: int | str | None = None,
    samples_per_shard: int | None = None,
    workers: int | None = None,
    executor: ExecutorLike | None = None,
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

    The options that shape the pack's bytes (``format`` to ``cut``, and ``transform``) are a
    :class:`~packer.conversion.options.ConvertOptions`; the rest say how this run goes.

    Args:
        src: folder with one sub-folder per class (ImageFolder layout).
        dst: the pack folder to create, or a URL (``s3://bucket/train.pack``; built locally and
            uploaded, manifest last: see :mod:`packer.storage.upload`); must not exist unless
            ``force``.
        format: a backend name (see ``pack formats``).
        options: backend options (``-o key=value`` on the CLI).
        shard_size: cut data files at about this many source bytes (``"512MB"`` or an int).
            With neither this nor ``samples_per_shard``: 1 GiB and at most
            :func:`~packer.conversion.cuts.default_samples_per_shard` samples.
        samples_per_shard: cut data files after this many samples.
        workers: processes writing shards in parallel on this machine (None: chosen from the
            CPUs this process may use, see :func:`packer.run.pools.default_workers`); output is
            identical for any value.
        executor: run shard writing on this :class:`concurrent.futures.Executor` or
            ``distributed.Client`` instead (workers must see SRC and DST at the same paths).
        on_error: ``fail`` stops at the first bad file; ``skip`` leaves it out and records why.
        validate: ``none``, ``quick`` (headers and trailers) or ``full`` (decode every image).
        force: replace an existing pack at ``dst`` (only after the new one is complete).
        extensions: which files are samples: None for ImageFolder's image extensions, a list
            (``"png,jpg"``), changes to it (``"+gif,-tif"``) or ``"*"`` for every file (see
            :func:`packer.source.scanner.parse_extensions`). Only image files are validated.
        symlinks: ``inside`` (default: follow links whose target is inside SRC), ``follow``
            (all, each one leaving SRC named in a warning) or ``skip``.
        transform: decode/resize/re-encode at convert time (see :mod:`packer.images.transforms`);
            None stores every source file's bytes unchanged. Without ``reencode`` the pack
            stores decoded pixels, which only ``stores_pixels`` backends accept.
        max_pixels: refuse images with more pixels (decompression bombs), checked from the
            header before any decode; None for Pillow's default (89,478,485). Recorded in the
            manifest for ``verify --deep``.
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
            nothing changed, else only the shards whose content changed (see
            :mod:`packer.conversion.update`); byte-identical to a fresh convert.
        checksum: with ``update``: compare file contents (size and CRC-32) instead of mtimes.
        progress: receives progress events (see :mod:`packer.progress`).
        storage_options: for a URL ``dst``: passed to fsspec.
    """
    chosen = ConvertOptions(
        format=format, options=options or {}, shard_size=shard_size,
        samples_per_shard=samples_per_shard, on_error=on_error, validate=validate,
        extensions=extensions if extensions is None or isinstance(extensions, str) else tuple(extensions),
        symlinks=symlinks, transform=transform, max_pixels=max_pixels, from_list=from_list,
        classes_file=classes_file, cut=cut,
    )  # fmt: skip
    run = RunSettings(
        workers=workers, executor=executor, force=force, resume=resume, dry_run=dry_run,
        update=update, checksum=checksum, progress=progress or NoProgress(),
    )  # fmt: skip
    return convert_with(src, dst, chosen, run, storage_options=storage_options)


def convert_with(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    chosen: ConvertOptions,
    run: RunSettings,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> ConvertReport:
    """:func:`convert` with its options as values (the CLI's and a script's reusable form)."""
    if not is_url(dst):
        return driver.convert(Path(src), Path(dst), chosen, run)
    url = os.fspath(dst)
    if run.resume:
        refuse_url("--resume", url)
    if run.update:
        report = update_at_url(
            url,
            lambda local: driver.convert(Path(src), local, chosen, run),
            storage_options=storage_options,
        )
    else:
        local_run = dataclasses.replace(run, force=False)
        report = to_url(
            url,
            lambda local: driver.convert(Path(src), local, chosen, local_run),
            force=run.force,
            storage_options=storage_options,
        )
    report.url = url
    return report


def merge(
    plan_dir: str | os.PathLike[str],
    part_dirs: Sequence[str | os.PathLike[str]],
    dst: str | os.PathLike[str],
    *,
    force: bool = False,
    progress: Progress | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> ConvertReport:
    """Assemble the parts of the plan in ``plan_dir`` into the pack ``dst`` (a folder or a URL;
    see :mod:`packer.conversion.parts`). Every check runs before DST is touched."""
    if not is_url(dst):
        return parts.merge(plan_dir, part_dirs, dst, force=force, progress=progress)
    url = os.fspath(dst)
    report = to_url(
        url,
        lambda local: parts.merge(plan_dir, part_dirs, local, progress=progress),
        force=force,
        storage_options=storage_options,
    )
    report.url = url
    return report


def status(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, checksum: bool = False
) -> Changes:
    """Is the pack at ``dst`` up to date with ``src``? SRC is planned with the options the pack
    was made with (the defaults if there is no pack or no state). A local pack only."""
    if is_url(dst):
        refuse_url("pack status", os.fspath(dst))
    return update.status(Path(src), Path(dst), checksum=checksum)


def save_plan(
    src: str | os.PathLike[str],
    plan_dir: str | os.PathLike[str],
    format: str = DEFAULT_FORMAT,
    *,
    force: bool = False,
    **options: Any,
) -> PlanSummary:
    """``pack plan``: scan and stat SRC once and save every decision of a convert in
    ``plan_dir``; ``options`` are :class:`~packer.conversion.options.ConvertOptions` fields.
    Returns a summary."""
    return save_plan_with(src, plan_dir, ConvertOptions(format=format, **options), force=force)


def save_plan_with(
    src: str | os.PathLike[str],
    plan_dir: str | os.PathLike[str],
    chosen: ConvertOptions,
    *,
    force: bool = False,
) -> PlanSummary:
    """:func:`save_plan` with the options as one value (what ``pack plan`` calls)."""
    return parts.save_plan(src, plan_dir, chosen, force=force)


def contact_sheet(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    per_class: int = 8,
    classes: Iterable[str] | None = None,
) -> dict[str, int]:
    """``pack inspect --preview``: a PNG of ``per_class`` thumbnails per class (loads Pillow)."""
    from packer.read.preview import contact_sheet as write_sheet

    return write_sheet(path, out, per_class=per_class, classes=classes)


def prepare_command_process() -> None:
    """What the ``pack`` program does to its own process and a library call never does: the fork
    server preloads packer (a worker starts in ~20 ms, not ~0.2 s), libtiff's stderr warnings are
    off and ``--max-pixels`` is the only pixel limit (:func:`packer.images.checks.own_process`).
    All are process-wide, so they belong to the program, not to packer's functions."""
    from packer.images.checks import own_process

    preload_workers()
    own_process()
