"""``packer.convert_samples``: a pack from samples in memory instead of a folder tree.

Any iterable of ``(key, label, data, ext)`` tuples (or mappings with those names): a generator
over a database, a list, a ``torch.utils.data.Dataset`` that yields encoded bytes. The pack is the
same format with the same guarantees as ``convert``: built under a temporary name and renamed,
deterministic for a deterministic input, bad images failed or skipped (``on_error``), keys checked
(unique, relative, no ``..``: ``pack extract`` writes them as paths).

A map-style input (``len()`` and ``[i]``) is cut into shards by index range, so ``workers`` write
them in parallel (the input is pickled to each worker process, as a DataLoader does with spawn);
any other iterable is consumed once, a shard at a time, in this process. Shards hold
``samples_per_shard`` samples (default as ``convert``: max(4096, ceil(N/16)), or 4096 for an
iterable of unknown length): counting samples, not bytes, keeps the cut independent of the
workers. ``--resume`` does not apply (an iterable cannot be replayed).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from packer._util.files import tree_bytes
from packer._version import __version__
from packer.backends.registry import DEFAULT_FORMAT, get_backend_class, make_backend
from packer.conversion.commit import finish_pack, index_results, output_error
from packer.conversion.cuts import MIN_DEFAULT_SHARD_SAMPLES, default_samples_per_shard
from packer.conversion.job import ShardJob
from packer.conversion.options import check_write_options
from packer.conversion.report import Collected, ConvertReport, build_report
from packer.conversion.result import ShardResult
from packer.conversion.runner import run_on
from packer.conversion.shard import write_shard
from packer.errors import UsageError
from packer.format.manifest import Manifest
from packer.format.staging import Staging, check_destination
from packer.images.checks import DEFAULT_MAX_PIXELS, validated_extensions
from packer.images.transforms import Transform
from packer.progress import NoProgress, Progress
from packer.run.pools import available_cpus, local_pool


class MapStyle(Protocol):
    """A sized, indexable input (a torch map-style Dataset, a list): split over workers."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Any: ...


def convert_samples(
    samples: Iterable[Any] | MapStyle,
    dst: str | os.PathLike[str],
    format: str = DEFAULT_FORMAT,
    *,
    classes: Sequence[str],
    options: Mapping[str, Any] | None = None,
    samples_per_shard: int | None = None,
    workers: int | None = None,
    on_error: str = "fail",
    validate: str = "quick",
    force: bool = False,
    transform: Transform | None = None,
    max_pixels: int | None = None,
    progress: Progress | None = None,
) -> ConvertReport:
    """Pack ``samples`` into a new pack at ``dst`` (see the module docstring).

    Args:
        samples: ``(key, label, data, ext)`` items; map-style inputs are written in parallel.
        classes: class names; a label indexes this list.
        workers: processes for a map-style input (default 1 per 2 CPUs this process may use).
        Others: as for :func:`packer.convert`.
    """
    started = time.perf_counter()
    progress = progress or NoProgress()
    check_write_options(on_error, validate, samples_per_shard)
    classes = [str(c) for c in classes]
    if not classes or len(set(classes)) != len(classes):
        raise UsageError("classes must name every class once")
    get_backend_class(format)
    pixel_shape = None
    if transform is not None and transform.reencode is None:
        pixel_shape = transform.pixel_shape()
    backend = make_backend(format, options, pixel_shape)
    dst_path = Path(dst)
    check_destination(dst_path, force=force)
    indexed = hasattr(samples, "__len__") and hasattr(samples, "__getitem__")
    count = len(samples) if indexed else None  # type: ignore[arg-type]
    per = samples_per_shard or (
        default_samples_per_shard(count) if count is not None else MIN_DEFAULT_SHARD_SAMPLES
    )
    workers = max(1, available_cpus() // 2) if workers is None else workers
    if workers < 1:
        raise UsageError(f"workers {workers} must be at least 1")
    try:
        with Staging(dst_path, force=force) as staging:
            template = ShardJob(
                shard=0,
                root="",
                paths=[],
                labels=np.zeros(0, dtype=np.int32),
                extension_ids=np.zeros(0, dtype=np.uint16),
                out_dir=os.fspath(staging.path),
                backend_name=backend.name,
                backend_options=backend.options.to_dict(),
                validate=validate,
                on_error=on_error,
                transform=transform.to_dict() if transform is not None else None,
                pixel_shape=pixel_shape,
                max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels,
                image_extensions=validated_extensions(None),
                classes=tuple(classes),
            )
            progress.start(count or 0, f"samples -> {backend.name}")
            try:
                if count is not None:
                    results = list(_indexed(samples, count, per, template, workers, progress))
                else:
                    stream = cast(Iterable[Any], samples)  # not map-style: iterated once
                    results = list(_streamed(stream, per, template, progress))
            finally:
                progress.finish()
            collected = _write_index(staging.path, results, classes, backend, template, per)
            pack_bytes = tree_bytes(staging.path)
            staging.commit()
    except OSError as exc:
        raise output_error(dst_path, exc) from None
    return build_report(dst_path, backend.name, None, collected, started, pack_bytes=pack_bytes)


def _indexed(
    samples: Any, count: int, per: int, template: ShardJob, workers: int, progress: Progress
) -> Iterator[ShardResult]:
    def part(a: int, b: int) -> Any:
        # items already in memory travel as their own slice, not the whole list per shard
        return _Offset(list(samples[a:b]), a) if isinstance(samples, (list, tuple)) else samples

    jobs = [
        dataclasses.replace(
            template, shard=k, dataset=part(a, min(count, a + per)), start=a,
            stop=min(count, a + per),
        )
        for k, a in enumerate(range(0, count, per))
    ]  # fmt: skip
    if workers > 1 and len(jobs) > 1:
        with local_pool(min(workers, len(jobs))) as pool:
            yield from run_on(pool, jobs, progress, {}, lambda r, j: False, in_flight=2 * workers)
    else:
        for job in jobs:
            yield write_shard(job, progress.advance)


def _streamed(
    samples: Iterable[Any], per: int, template: ShardJob, progress: Progress
) -> Iterator[ShardResult]:
    """One shard's items in memory at a time; sample numbers in errors count from 0 overall."""
    items = iter(samples)
    for shard in itertools.count():
        chunk = list(itertools.islice(items, per))
        if not chunk:
            return
        offset = shard * per
        job = dataclasses.replace(
            template, shard=shard, dataset=_Offset(chunk, offset), start=offset,
            stop=offset + len(chunk),
        )  # fmt: skip
        yield write_shard(job, progress.advance)


class _Offset:
    """A chunk of a stream, indexed by overall sample number."""

    def __init__(self, items: list[Any], offset: int) -> None:
        self.items, self.offset = items, offset

    def __getitem__(self, i: int) -> Any:
        return self.items[i - self.offset]


def _checked(r: ShardResult, position: dict[str, int], classes: int) -> ShardResult:
    """``r`` with its labels checked against the classes and its extension ids mapped from its
    own table to the pack's."""
    if len(r.labels) and (r.labels.min() < 0 or r.labels.max() >= classes):
        bad = int(r.labels[(r.labels < 0) | (r.labels >= classes)][0])
        raise UsageError(
            f"label {bad} is out of range for {classes} classes; fix the label or the classes list"
        )
    remap = np.array([position[e] for e in (r.ext_names or [])], dtype=np.uint16)
    r.extension_ids = remap[r.extension_ids] if len(remap) else r.extension_ids
    return r


def _write_index(
    root: Path,
    results: list[ShardResult],
    classes: list[str],
    backend: Any,
    template: ShardJob,
    per: int,
) -> Collected:
    """Map each shard's extension ids to the pack's sorted table, then index, manifest, sidecars."""
    names = sorted({e for r in results for e in (r.ext_names or [])})
    position = {e: i for i, e in enumerate(names)}
    collected = Collected(len(classes))
    dtypes = index_results(
        root,
        (_checked(r, position, len(classes)) for r in results),
        collected,
        empty="no samples to pack (every one was skipped, or the input is empty)",
        unique_keys=True,
    )
    manifest = Manifest(
        backend_name=backend.name,
        options=backend.options.to_dict(),
        classes=classes,
        class_counts=collected.counts.tolist(),
        num_samples=collected.num_samples,
        payload_bytes=collected.payload_bytes,
        data_files=collected.data_files,
        extensions=names,
        index_sha256={},
        source={"samples": collected.num_samples + len(collected.skipped)},
        created_by={
            "tool": "packer",
            "version": __version__,
            "input": "samples",
            "validate": template.validate,
            "samples_per_shard": per,
            "max_pixels": template.max_pixels,
        },
        skipped=[s.to_dict() for s in sorted(collected.skipped, key=lambda s: s.path)],
        transform=template.transform,
        sample_shape=list(template.pixel_shape) if template.pixel_shape else None,
        index_dtypes=dtypes,
    )
    finish_pack(root, backend, manifest)
    return collected


__all__ = ["convert_samples"]
