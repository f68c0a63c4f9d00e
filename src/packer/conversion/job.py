"""One shard's work as a value: :class:`ShardJob`, small and picklable, the same in this
process, in a worker process or on a cluster."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from packer._util.columns import Array
from packer.conversion.cuts import CutRule
from packer.images.checks import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class ShardJob:
    """Everything one process needs to write one shard; small and picklable."""

    shard: int
    root: str
    paths: Sequence[str]  # a PathTable from a scan; slicing gives an in-memory one
    labels: Array  # in memory or a column on disk (see packer._util.columns): slices are ndarrays
    extension_ids: Array
    out_dir: str
    backend_name: str
    backend_options: dict[str, Any]
    validate: str
    on_error: str
    transform: dict[str, Any] | None = None
    pixel_shape: tuple[int, int, int] | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: write paths[start:stop]; with ``cut``, end the shard where that rule says (the rule
    #: plan_shards applies, decided while reading; ``cut_points`` are the plan's, by position)
    start: int = 0
    stop: int | None = None
    cut: CutRule | None = None
    cut_points: Array | None = None
    #: paths whose key keeps the extension (names differing only by extension)
    full_keys: frozenset[str] = frozenset()
    #: lower-case extensions of files that are images and so validated; others are plain bytes
    image_extensions: frozenset[str] = frozenset()
    #: check every sample, write nothing (``--dry-run``)
    dry_run: bool = False
    #: the pack's class names, for formats that record them in data files (``classes_in_data``)
    classes: tuple[str, ...] = ()
    #: samples from memory instead of files (``convert_samples``): ``dataset[i]`` for i in
    #: ``start..stop`` is ``(key, label, data, ext)`` or a mapping of those; paths unused
    dataset: Any = None


def compact_job(job: ShardJob) -> ShardJob:
    """The job with only its own slice of the lists, so that what is pickled stays small (a
    dataset job is sent as it is: its samples are indexed by overall number)."""
    if job.dataset is not None:
        return job
    a, b = job.start, job.stop
    return dataclasses.replace(
        job,
        paths=job.paths[a:b],
        labels=job.labels[a:b],
        extension_ids=job.extension_ids[a:b],
        start=0,
        stop=None,
        cut_points=None if job.cut is None else job.cut_points,
    )
