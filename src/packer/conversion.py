"""Folder tree -> pack: scan, plan, write shards (wherever they run), index, manifest, commit.

Determinism: the shard plan is a pure function of the scanned file list, file sizes and options,
and each shard is written by the same function whichever process runs it, so ``--workers N`` (or any
executor) gives output byte-identical to ``--workers 1``. Memory: the scan holds one path string per
file; each shard's index rows are streamed to disk as the shard completes.

The jobs live in their own modules: :mod:`packer.plan` (boundaries), :mod:`packer.shards` (writing
one shard), :mod:`packer.executors` (where shards run), :mod:`packer.resume` (``--resume`` records),
:mod:`packer.findings` (warnings that need the samples' bytes).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import errno
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from packer._version import __version__
from packer.backends.base import Backend
from packer.conversion_report import Collected, ConvertReport, build_report
from packer.errors import OutputError, SourceError, UsageError
from packer.executors import local_pool, run_inline, run_on
from packer.files import sha256_file, tree_bytes
from packer.findings import duplicates_across_classes, index_columns
from packer.images import DEFAULT_MAX_PIXELS, VALIDATE_MODES, validated_extensions
from packer.index import INDEX_FILES, IndexWriter
from packer.keys import split_name
from packer.manifest import Manifest
from packer.omissions import MAX_LISTED, Skipped
from packer.plan import DEFAULT_SHARD_SIZE, file_sizes, plan_shards
from packer.progress import NoProgress, Progress
from packer.registry import DEFAULT_FORMAT, get_backend_class, make_backend, pixel_formats
from packer.resume import RESUME_DIR, prepare_resume, remove_strays, reusable, save_result
from packer.scanner import DEFAULT_SYMLINKS, Scan, parse_extensions, scan_tree
from packer.shards import ShardJob, ShardResult
from packer.sizes import parse_bytes
from packer.staging import Staging, check_destination

if TYPE_CHECKING:
    from packer.transforms import Transform  # imports Pillow: only where a transform runs

ON_ERROR_MODES = ("fail", "skip")


def _pixel_shape(
    backend_cls: type[Backend[Any]], transform: Transform | None
) -> tuple[int, int, int] | None:
    """Decide what a transformed pack stores: decoded pixels (no --reencode) or re-encoded bytes."""
    if transform is None or transform.reencode is not None:
        return None
    if not backend_cls.stores_pixels:
        raise UsageError(
            f"format {backend_cls.name} stores encoded images: add --reencode png (lossless), "
            f"jpeg:Q or webp:Q, or use --format {' or '.join(pixel_formats())} to store decoded "
            "pixels"
        )
    return transform.pixel_shape()


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    format: str = DEFAULT_FORMAT,
    *,
    options: Mapping[str, Any] | None = None,
    shard_size: int | str | None = None,
    samples_per_shard: int | None = None,
    workers: int = 1,
    executor: cf.Executor | None = None,
    on_error: str = "fail",
    validate: str = "quick",
    force: bool = False,
    extensions: str | Iterable[str] | None = None,
    symlinks: str = DEFAULT_SYMLINKS,
    transform: Transform | None = None,
    max_pixels: int | None = None,
    resume: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ConvertReport:
    """Pack the class-per-folder tree ``src`` into a new pack at ``dst``.

    Args:
        src: folder with one sub-folder per class (ImageFolder layout).
        dst: the pack folder to create; must not exist unless ``force``.
        format: a backend name (see ``pack formats``).
        options: backend options (``-o key=value`` on the CLI).
        shard_size: cut data files at about this many source bytes (``"512MB"`` or an int).
            Default 1 GiB when ``samples_per_shard`` is not given either.
        samples_per_shard: cut data files after this many samples.
        workers: processes writing shards in parallel on this machine; output is identical for
            any value.
        executor: run shard writing on this :class:`concurrent.futures.Executor` instead (e.g.
            ``distributed.Client.get_executor()``; workers must see SRC and DST at the same paths).
            Output is identical.
        on_error: ``fail`` stops at the first bad file; ``skip`` leaves it out and records why.
        validate: ``none``, ``quick`` (headers and trailers) or ``full`` (decode every image).
        force: replace an existing pack at ``dst`` (only after the new one is complete).
        extensions: which files are samples: None for ImageFolder's image extensions, a list
            (``"png,jpg"``), changes to it (``"+gif,-tif"``) or ``"*"`` for every file (see
            :func:`packer.scanner.parse_extensions`). Only image files are validated.
        symlinks: ``inside`` (default: follow links whose target is inside SRC), ``follow``
            (all, each one leaving SRC named in a warning) or ``skip``.
        transform: decode/resize/re-encode at convert time (see :mod:`packer.transforms`); None
            (the default) stores every source file's bytes unchanged. Without ``reencode`` the
            pack stores decoded pixels, which only ``stores_pixels`` backends accept.
        max_pixels: refuse images with more pixels (decompression bombs), checked from the header
            by ``quick`` validation and enforced while decoding; None for Pillow's default
            (89,478,485). Recorded in the manifest for ``verify --deep``.
        resume: continue an interrupted conversion to the same DST from its finished shards
            (each one checked by sha256); the result is byte-identical to an uninterrupted run.
        dry_run: scan, read and check every file and report every bad or ignored one; write
            nothing (``report.skipped`` lists the bad files whatever ``on_error`` is).
        progress: receives progress events (see :mod:`packer.progress`).
    """
    started = time.perf_counter()
    progress = progress or NoProgress()
    max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    limit = _check_arguments(on_error, validate, workers, samples_per_shard, shard_size)
    src_path, dst_path = Path(src), Path(dst)
    pixel_shape = _pixel_shape(get_backend_class(format), transform)
    backend = make_backend(format, options, pixel_shape)
    if src_path.is_dir() and dst_path.resolve().is_relative_to(src_path.resolve()):
        raise UsageError(
            f"{dst_path}: is inside SRC {src_path}; choose a DST outside the source tree"
        )
    if not dry_run:
        check_destination(dst_path, force=force)  # fail fast, before a long scan
    wanted = parse_extensions(extensions)
    scan = _scan_source(src_path, wanted, symlinks, keep_going=on_error == "skip" or dry_run)
    ext_names, ext_ids = _extension_table(scan, transform)
    created_by = {
        "tool": "packer",
        "version": __version__,
        "validate": validate,
        "shard_size": limit,
        "samples_per_shard": samples_per_shard,
        "max_pixels": max_pixels,
        "extensions": "*" if wanted is None else sorted(wanted),
        "symlinks": symlinks,
    }
    template = ShardJob(
        shard=0,
        root=str(src_path),
        paths=scan.paths,
        labels=scan.labels,
        extension_ids=ext_ids,
        out_dir=str(dst_path.parent),
        backend_name=backend.name,
        backend_options=backend.options.to_dict(),
        validate=validate,
        on_error=on_error,
        transform=transform.to_dict() if transform is not None else None,
        pixel_shape=pixel_shape,
        max_pixels=max_pixels,
        byte_limit=limit,
        full_keys=scan.full_keys,
        image_extensions=validated_extensions(wanted),
        dry_run=dry_run,
    )

    def run_shards(template: ShardJob, done: dict[int, ShardResult]) -> Iterator[ShardResult]:
        if executor is None and workers == 1:
            yield from run_inline(template, samples_per_shard, progress, done, reusable)
            return
        # Workers need the shard boundaries up front: plan them from file sizes, with the very
        # rule the inline writer applies while reading (same output either way).
        sizes = file_sizes(src_path, scan.paths) if limit is not None else None
        bounds = plan_shards(sizes, len(scan), limit, samples_per_shard)
        jobs = [
            dataclasses.replace(template, shard=k, start=a, stop=b, byte_limit=None)
            for k, (a, b) in enumerate(bounds)
        ]
        if executor is not None:  # it schedules every shard itself; results come in shard order
            yield from run_on(executor, jobs, progress, done, reusable, in_flight=len(jobs))
            return
        with local_pool(workers) as pool:
            yield from run_on(pool, jobs, progress, done, reusable, in_flight=2 * workers)

    collected = Collected(
        len(scan.classes), skipped=list(scan.skipped), findings=list(scan.findings)
    )
    if dry_run:
        progress.start(len(scan), f"check {scan.root.name}")
        try:
            for result in run_shards(template, {}):
                collected.add(result, keep_columns=True)
        finally:
            progress.finish()
        collected.findings.extend(collected.duplicates(scan))
        return build_report(dst_path, backend, scan, collected, started, pack_bytes=0, dry_run=True)
    try:
        with Staging(dst_path, force=force, keep_partial=resume) as staging:
            template = dataclasses.replace(template, out_dir=str(staging.path))
            done = prepare_resume(
                staging.path, template, backend, [created_by, on_error, ext_names]
            )
            records = dict(done)
            resumed = 0
            progress.start(len(scan), f"{src_path.name} -> {format}")
            index = IndexWriter(staging.path)
            try:
                for result in run_shards(template, done):
                    if records.get(result.shard) is result:
                        resumed += 1
                    else:
                        save_result(staging.path / RESUME_DIR, result)
                    index.append(
                        result.labels,
                        result.locations,
                        result.crc32,
                        result.extension_ids,
                        result.key_blob,
                        result.key_lengths,
                    )
                    collected.add(result)
            except BaseException:
                index.abort()
                raise
            finally:
                progress.finish()
            if index.count == 0:
                raise SourceError(
                    f"{src_path}: every image was skipped; nothing to pack (see the errors above)"
                )
            index.finish()
            collected.findings.extend(duplicates_across_classes(scan, *index_columns(staging.path)))
            remove_strays(staging.path, {d.name for d in collected.data_files})
            manifest = _manifest(
                backend,
                scan,
                collected,
                ext_names,
                created_by,
                transform,
                pixel_shape,
                index_digests(staging.path),
            )
            manifest.write(staging.path)
            pack_bytes = tree_bytes(staging.path)
            staging.commit()
    except OSError as exc:
        raise _output_error(dst_path, exc) from None
    report = build_report(dst_path, backend, scan, collected, started, pack_bytes=pack_bytes)
    report.resumed_shards = resumed
    return report


def _check_arguments(
    on_error: str,
    validate: str,
    workers: int,
    samples_per_shard: int | None,
    shard_size: int | str | None,
) -> int | None:
    """Refuse bad arguments before any work; return the shard byte limit (None: count only)."""
    if on_error not in ON_ERROR_MODES:
        raise UsageError(f"--on-error {on_error!r} must be one of: {', '.join(ON_ERROR_MODES)}")
    if validate not in VALIDATE_MODES:
        raise UsageError(f"--validate {validate!r} must be one of: {', '.join(VALIDATE_MODES)}")
    if workers < 1:
        raise UsageError(f"--workers {workers} must be at least 1")
    if samples_per_shard is not None and samples_per_shard < 1:
        raise UsageError(f"--samples-per-shard {samples_per_shard} must be at least 1")
    limit = parse_bytes(shard_size) if shard_size is not None else None
    if limit is None and samples_per_shard is None:
        limit = DEFAULT_SHARD_SIZE
    return limit


def _scan_source(
    src: Path, wanted: frozenset[str] | None, symlinks: str, *, keep_going: bool
) -> Scan:
    """Scan SRC; an empty result is an error that says what was found instead."""
    scan = scan_tree(
        src, extensions=wanted, symlinks=symlinks, on_bad_file=_keep_going if keep_going else None
    )
    if len(scan) == 0:
        listed = "every file" if wanted is None else "extensions " + ", ".join(sorted(wanted))
        hint = (
            "; symlinks leaving SRC were left out (pass --symlinks follow to pack them)"
            if scan.ignored.by_reason.get("symlink leaving SRC")
            else ""
        )
        seen = f" ({scan.ignored.summary()})" if scan.ignored.count else ""
        raise SourceError(
            f"{src}: no samples found; expected SRC/<class>/<file> with {listed}{seen}{hint}"
        )
    return scan


def _extension_table(scan: Scan, transform: Transform | None) -> tuple[list[str], np.ndarray]:
    """The pack's sorted extension names and each sample's position in them."""
    if transform is not None and transform.reencode is not None:
        # every sample is re-encoded to one format
        return [transform.encode_extension], np.zeros(len(scan), dtype=np.uint16)
    exts = [p.rpartition(".")[2] for p in scan.paths]  # C speed; fixed below where wrong
    exts = [split_name(p)[1] if "/" in e else e for p, e in zip(scan.paths, exts, strict=True)]
    names = sorted(set(exts))
    lookup = {e: i for i, e in enumerate(names)}
    return names, np.fromiter((lookup[e] for e in exts), np.uint16, len(scan))


def _manifest(
    backend: Backend[Any],
    scan: Scan,
    collected: Collected,
    ext_names: list[str],
    created_by: dict[str, Any],
    transform: Transform | None,
    pixel_shape: tuple[int, int, int] | None,
    index_sha256: dict[str, str],
) -> Manifest:
    return Manifest(
        backend_name=backend.name,
        options=backend.options.to_dict(),
        classes=scan.classes,
        class_counts=collected.counts.tolist(),
        num_samples=collected.num_samples,
        payload_bytes=collected.payload_bytes,
        data_files=collected.data_files,
        extensions=ext_names,
        index_sha256=index_sha256,
        source={
            "files": len(scan) + len(scan.skipped),
            "bytes": collected.source_bytes,
            "ignored_files": scan.ignored.count,
            "ignored_by_reason": dict(sorted(scan.ignored.by_reason.items())),
        },
        created_by=created_by,
        skipped=[s.to_dict() for s in sorted(collected.skipped, key=lambda s: s.path)],
        ignored=[s.to_dict() for s in scan.ignored.listed],
        warnings=[w.to_dict() for w in collected.findings[:MAX_LISTED]],
        transform=transform.to_dict() if transform is not None else None,
        sample_shape=list(pixel_shape) if pixel_shape is not None else None,
    )


def _output_error(dst: Path, exc: OSError) -> OutputError:
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


def _keep_going(skip: Skipped) -> None:
    """``on_bad_file`` for --on-error skip: the scan records the file, the convert goes on."""


def index_digests(root: Path) -> dict[str, str]:
    return {name: sha256_file(root / name) for name in INDEX_FILES}
