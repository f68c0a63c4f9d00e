"""Writing one shard: read each source file, check it, transform it, hand it to the backend.

:func:`write_shard` is a pure function of a small, picklable :class:`ShardJob` and returns a
:class:`ShardResult` (the data file's name, size and sha256 plus its index rows): it runs the same in
this process, in a worker process or on a cluster, and the driver alone commits. The samples come
from :mod:`packer.conversion.items`; this module decides, per sample, what is written.
"""

from __future__ import annotations

import os
import uuid
import zlib
from array import array
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from packer._util.columns import Array
from packer._util.files import sha256_file
from packer.backends.base import ShardWriter
from packer.backends.registry import make_backend
from packer.conversion.findings import content_mismatch
from packer.conversion.items import Item, dataset_items, file_items
from packer.conversion.job import ShardJob
from packer.conversion.result import ShardResult
from packer.errors import SourceError, UsageError
from packer.format.manifest import DataFile
from packer.images.checks import (
    EXTENSION_FORMATS,
    FORMAT_SIGNATURES,
    check_image,
    decode_error_reason,
)
from packer.source.omissions import Finding, Skipped

if TYPE_CHECKING:
    from packer.images.transforms import Transform  # imports Pillow: only where a transform runs

_SIGNATURES = {e: FORMAT_SIGNATURES[f] for e, f in EXTENSION_FORMATS.items()}


def write_shard(
    job: ShardJob, on_progress: Callable[[int, int], None] | None = None
) -> ShardResult:
    """Write one shard's data file; return its index rows. Runs in the main or a worker process."""
    backend = make_backend(job.backend_name, job.backend_options, job.pixel_shape)
    backend.classes = job.classes
    out = Path(job.out_dir) / backend.data_file_name(job.shard)
    # Written under a name of this attempt's own, renamed when complete: a task that runs twice
    # (a cluster worker lost mid-task) never has two writers on one file, and a final name always
    # holds a complete file. Same bytes either way: the shard is a pure function of the job.
    attempt = out.with_name(f".{out.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.partial")
    stop = len(job.paths) if job.stop is None else job.stop
    rows = _Rows(job, stop - job.start)
    writer: ShardWriter | _DiscardWriter = (
        _DiscardWriter(out) if job.dry_run else backend.open_writer(attempt)
    )
    items = file_items(job, job.start, stop) if job.dataset is None else dataset_items(job, stop)
    with writer:
        consumed = _write_samples(job, items, writer, rows, on_progress)
    n = len(rows.key_lengths)
    locations = np.empty((n, 3), dtype=np.uint64)
    locations[:, 0] = job.shard
    final = writer.final_locations()
    if final is not None:
        if final.shape != (n, 2):
            raise RuntimeError(
                f"backend {backend.name}: final_locations() has shape {final.shape}, expected {(n, 2)}"
            )
        locations[:, 1:] = final
    elif n:
        locations[:, 1] = np.frombuffer(rows.offsets, dtype=np.uint64)
        locations[:, 2] = np.frombuffer(rows.lengths, dtype=np.uint64)
    if job.dry_run:
        data_file = DataFile(out.name, n, 0, "")
    else:
        sha256 = writer.sha256 or sha256_file(attempt)
        attempt.replace(out)
        data_file = DataFile(out.name, n, out.stat().st_size, sha256)
    return rows.result(job, data_file, locations, consumed)


def _write_samples(
    job: ShardJob,
    items: Iterable[Item],
    writer: ShardWriter | _DiscardWriter,
    rows: _Rows,
    on_progress: Callable[[int, int], None] | None,
) -> int:
    """The convert hot path: per sample, read, check, transform, hand to the backend and append
    to compact arrays (no numpy call and no Path object per sample). Returns how many samples of
    the plan this shard took (a cut rule may end it early).

    One thread reads: a read-ahead thread was measured slower here (GIL hand-offs per file cost
    more than the overlapped system calls save on small files).
    """
    images = job.image_extensions
    transform = _transform(job)
    pixels = job.pixel_shape is not None
    start, cut, points = job.start, job.cut, job.cut_points
    content_cut = cut is not None and cut.content and points is not None
    point = _BlockReader(points) if content_cut and points is not None else None
    end_here = False
    consumed = rows.planned
    planned_bytes = source_bytes = payload_bytes = pending = pending_bytes = 0
    validate = job.validate
    crc32 = zlib.crc32
    local_exts, ext_ids, kept_labels = rows.local_exts, rows.ext_ids, rows.kept_labels
    offsets, lengths, crcs, kept = rows.offsets, rows.lengths, rows.crcs, rows.kept
    key_blob, key_lengths = rows.key_blob, rows.key_lengths
    source_sizes, source_mtimes, source_crcs = (
        rows.source_sizes,
        rows.source_mtimes,
        rows.source_crcs,
    )
    add = writer.add
    for i, (rel, where, key, ext, label, data, size, mtime, reason) in enumerate(items):
        if cut is not None and (end_here or cut.full(i, planned_bytes, size)):
            consumed = i  # this sample opens the next shard
            break
        planned_bytes += size
        if content_cut:
            end_here = cut.ends(i + 1, planned_bytes, size, point(start + i))  # type: ignore
        source_crc = crc32(data) if reason is None else 0
        source_sizes.append(size)
        source_mtimes.append(mtime)
        source_crcs.append(source_crc)
        if reason is None and validate != "none" and ext.lower() in images:
            reason = check_image(data, validate, job.max_pixels)
            signature = _SIGNATURES.get(ext.lower())
            if reason is None and signature is not None and not data.startswith(signature):
                mismatch = content_mismatch(rel, ext, data)
                if mismatch is not None:
                    rows.findings.append(mismatch)
        if reason is None and transform is not None:
            try:
                if pixels:
                    data = transform.pixels(data, job.max_pixels).tobytes()
                else:
                    data, ext = transform.encode(data, job.max_pixels)
            except UsageError:
                raise
            except Exception as exc:  # Pillow raises many types for undecodable input
                reason = decode_error_reason(exc)
        if reason is not None:
            if job.on_error == "fail" and not job.dry_run:
                raise SourceError(
                    f"{where}: {reason}; fix or remove the file, or pass --on-error skip"
                )
            rows.skipped.append(Skipped(rel, reason))
            continue
        if local_exts is not None:
            ext_ids.append(local_exts.setdefault(ext, len(local_exts)))
            kept_labels.append(label)
        offset, length = add(key, ext, label, data)
        offsets.append(offset)
        lengths.append(length)
        crcs.append(crc32(data) if transform is not None else source_crc)
        kept[i] = True
        encoded = key.encode("utf-8", "surrogateescape")
        key_blob += encoded
        key_lengths.append(len(encoded))
        source_bytes += size
        payload_bytes += len(data)
        if on_progress is not None:
            pending += 1
            pending_bytes += len(data)
            if pending == 256:
                on_progress(pending, pending_bytes)
                pending = pending_bytes = 0
    if on_progress is not None and pending:
        on_progress(pending, pending_bytes)
    rows.planned_bytes, rows.source_bytes, rows.payload_bytes = (
        planned_bytes,
        source_bytes,
        payload_bytes,
    )
    return consumed


def _transform(job: ShardJob) -> Transform | None:
    if job.transform is None:
        return None
    from packer.images.transforms import Transform

    return Transform.from_dict(job.transform)


class _Rows:
    """A shard's index rows as they are written: compact arrays (8 bytes a sample, not an object),
    turned into a :class:`ShardResult` at the end."""

    def __init__(self, job: ShardJob, planned: int) -> None:
        self.planned = planned  # samples of the plan in this shard's range
        self.offsets, self.lengths, self.crcs = array("Q"), array("Q"), array("I")
        self.source_sizes, self.source_mtimes = array("q"), array("q")
        self.source_crcs = array("I")
        self.kept = np.zeros(planned, dtype=bool)
        self.key_blob = bytearray()
        self.key_lengths = array("I")
        self.skipped: list[Skipped] = []
        self.findings: list[Finding] = []
        self.source_bytes = self.payload_bytes = self.planned_bytes = 0
        #: a dataset job numbers its own extensions (the driver maps them to the pack's table)
        self.local_exts: dict[str, int] | None = None if job.dataset is None else {}
        self.ext_ids, self.kept_labels = array("H"), array("i")

    def result(
        self, job: ShardJob, data_file: DataFile, locations: np.ndarray, consumed: int
    ) -> ShardResult:
        kept = self.kept[:consumed]
        start = job.start
        from_plan = self.local_exts is None
        return ShardResult(
            shard=job.shard,
            data_file=data_file,
            labels=(
                job.labels[start : start + consumed][kept]
                if job.dataset is None
                else np.asarray(self.kept_labels, dtype=np.int32)
            ),
            locations=locations,
            crc32=np.asarray(self.crcs, dtype=np.uint32),
            extension_ids=(
                job.extension_ids[start : start + consumed][kept]
                if from_plan
                else np.asarray(self.ext_ids, dtype=np.uint16)
            ),
            key_blob=bytes(self.key_blob),
            key_lengths=np.frombuffer(self.key_lengths, dtype=np.uint32),
            skipped=self.skipped,
            source_bytes=self.source_bytes,
            payload_bytes=self.payload_bytes,
            start=start,
            consumed=consumed,
            planned_bytes=self.planned_bytes,
            findings=self.findings,
            ext_names=None if self.local_exts is None else list(self.local_exts),
            source_sizes=_first(self.source_sizes, np.int64, consumed),
            source_mtimes=_first(self.source_mtimes, np.int64, consumed),
            source_crc32=_first(self.source_crcs, np.uint32, consumed),
        )


def _first(values: array[int], dtype: type[np.generic], n: int) -> np.ndarray:
    return np.frombuffer(values, dtype=dtype)[:n].copy()


class _BlockReader:
    """Item ``i`` of an array (a column on disk is read a block at a time, not per item)."""

    def __init__(self, array: Array, size: int = 65536) -> None:
        self.array, self.size = array, size
        self.lo, self.block = 0, np.zeros(0)

    def __call__(self, i: int) -> float:
        if not self.lo <= i < self.lo + len(self.block):
            self.lo = i
            self.block = np.asarray(self.array[i : i + self.size])
        return float(self.block[i - self.lo])


class _DiscardWriter:
    """``--dry-run``: accepts samples like a writer and writes nothing."""

    sha256: str | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.position = 0

    def add(self, key: str, ext: str, label: int, data: bytes) -> tuple[int, int]:
        offset = self.position
        self.position += len(data)
        return offset, len(data)

    def final_locations(self) -> None:
        return None

    def __enter__(self) -> _DiscardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
