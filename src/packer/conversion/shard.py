"""Writing one shard: read each source file, check it, transform it, hand it to the backend.

:func:`write_shard` is a pure function of a small, picklable :class:`ShardJob` and returns a
:class:`ShardResult` (the data file's name, size and sha256 plus its index rows): it runs the same in
this process, in a worker process or on a cluster, and the driver alone commits.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
import zlib
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from packer._util.columns import Array
from packer._util.files import sha256_file
from packer.backends.base import ShardWriter
from packer.backends.registry import make_backend
from packer.conversion.cuts import CutRule, stat_size
from packer.conversion.findings import content_mismatch
from packer.errors import PackError, SourceError, UsageError
from packer.format.keys import safe_relative, sample_key
from packer.format.manifest import DataFile
from packer.images.checks import (
    DEFAULT_MAX_PIXELS,
    EXTENSION_FORMATS,
    FORMAT_SIGNATURES,
    check_image,
    decode_error_reason,
)
from packer.source.omissions import Finding, Skipped

if TYPE_CHECKING:
    from packer.images.transforms import Transform  # imports Pillow: only where a transform runs


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


@dataclass
class ShardResult:
    """What writing one shard produced: its data file and index rows, and what it left out.

    Small and picklable (workers send it back); :meth:`to_record` / :meth:`from_record` turn it
    into arrays plus JSON for ``--resume``, driven by the fields themselves.
    """

    shard: int
    data_file: DataFile
    labels: np.ndarray
    locations: np.ndarray
    crc32: np.ndarray
    extension_ids: np.ndarray
    key_blob: bytes  # the shard's keys, UTF-8 (surrogateescape), back to back
    key_lengths: np.ndarray  # uint32 byte length of each key
    skipped: list[Skipped]
    source_bytes: int
    payload_bytes: int
    start: int = 0
    consumed: int = 0  # samples of the plan this shard took, skipped ones included
    planned_bytes: int = 0  # their source sizes, skipped ones included (what the cut rule counts)
    findings: list[Finding] = field(default_factory=list)
    #: for dataset jobs: the extension names ``extension_ids`` index (the driver maps them to the
    #: pack's table); None when the ids are the plan's
    ext_names: list[str] | None = None
    #: per consumed sample (skipped ones included): the source file's size, mtime_ns (from the
    #: fstat of the read) and CRC-32 of its bytes (0 if unreadable): ``--update``'s change check
    source_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    source_mtimes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    source_crc32: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint32))

    def to_record(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays for an ``.npz``, everything else as JSON-ready values)."""
        arrays: dict[str, np.ndarray] = {}
        info: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                arrays[f.name] = value
            elif isinstance(value, bytes):
                arrays[f.name] = np.frombuffer(value, dtype=np.uint8)
            elif isinstance(value, DataFile):
                info[f.name] = value.to_dict()
            elif f.name == "ext_names":
                info[f.name] = value
            elif isinstance(value, list):
                info[f.name] = [item.to_dict() for item in value]
            else:
                info[f.name] = value
        return arrays, info

    @classmethod
    def from_record(cls, arrays: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> ShardResult:
        """The inverse of :meth:`to_record`; raises KeyError/TypeError/ValueError on a bad record."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name.startswith("source_") and f.name not in arrays and f.name not in info:
                continue  # a record from before these were kept: the default (empty)
            if f.name in arrays:
                raw = arrays[f.name]
                values[f.name] = raw.tobytes() if f.name == "key_blob" else raw
            elif f.name == "data_file":
                values[f.name] = DataFile(**info[f.name])
            elif f.name == "skipped":
                values[f.name] = [Skipped(**x) for x in info[f.name]]
            elif f.name == "findings":
                values[f.name] = [Finding(**x) for x in info[f.name]]
            elif f.name == "ext_names":
                values[f.name] = info.get(f.name)
            else:
                values[f.name] = int(info[f.name])
        return cls(**values)


def read_file(path: str) -> bytes:
    """Whole-file read with three syscalls; ~2x faster than ``open().read()`` on small files."""
    return read_file_stat(path)[0]


def read_file_stat(path: str) -> tuple[bytes, int]:
    """A file's bytes and the mtime_ns of what was read (one fstat of the same descriptor)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        size = st.st_size
        data = os.read(fd, size + 1)  # one byte more than expected reveals a file still growing
        if len(data) <= size:
            return data, st.st_mtime_ns
        chunks = [data]
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), st.st_mtime_ns
    finally:
        os.close(fd)


def write_shard(
    job: ShardJob, on_progress: Callable[[int, int], None] | None = None
) -> ShardResult:
    """Write one shard's data file; return its index rows. Runs in the main or a worker process.

    This loop is the convert hot path: per sample it reads the file, checks it, hands it to the
    backend and appends to compact arrays -- no numpy call and no Path object per sample.
    """
    backend = make_backend(job.backend_name, job.backend_options, job.pixel_shape)
    backend.classes = job.classes
    out = Path(job.out_dir) / backend.data_file_name(job.shard)
    # Written under a name of this attempt's own, renamed when complete: a task that runs twice
    # (a cluster worker lost mid-task) never has two writers on one file, and a final name always
    # holds a complete file. Same bytes either way: the shard is a pure function of the job.
    attempt = out.with_name(f".{out.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.partial")
    images = job.image_extensions
    signatures = {e: FORMAT_SIGNATURES[f] for e, f in EXTENSION_FORMATS.items()}
    findings: list[Finding] = []
    transform: Transform | None = None
    if job.transform is not None:
        from packer.images.transforms import Transform

        transform = Transform.from_dict(job.transform)
    pixels = job.pixel_shape is not None
    payload_bytes = 0
    start = job.start
    stop = len(job.paths) if job.stop is None else job.stop
    cut = job.cut
    points = job.cut_points
    content_cut = cut is not None and cut.content and points is not None
    point = _BlockReader(points) if content_cut and points is not None else None
    end_here = False
    planned_bytes = 0
    consumed = stop - start
    offsets, lengths, crcs = array("Q"), array("Q"), array("I")
    source_sizes, source_mtimes, source_crcs = array("q"), array("q"), array("I")
    kept = np.zeros(stop - start, dtype=bool)
    key_blob = bytearray()
    key_lengths = array("I")
    skipped: list[Skipped] = []
    source_bytes = 0
    pending = pending_bytes = 0
    validate = job.validate
    crc32 = zlib.crc32
    writer: ShardWriter | _DiscardWriter = (
        _DiscardWriter(out) if job.dry_run else backend.open_writer(attempt)
    )
    # One thread reads: a read-ahead thread was measured slower here (GIL hand-offs per file cost
    # more than the overlapped system calls save on small files).
    local_exts: dict[str, int] | None = None if job.dataset is None else {}
    ext_ids, kept_labels = array("H"), array("i")
    items = _file_items(job, start, stop) if job.dataset is None else _dataset_items(job, stop)
    with writer:
        add = writer.add
        for i, (rel, where, key, ext, label, data, size, mtime, reason) in enumerate(items):
            if cut is not None and (end_here or cut.full(i, planned_bytes, size)):
                consumed = i  # this sample opens the next shard
                break
            planned_bytes += size
            if content_cut:
                end_here = cut.ends(i + 1, planned_bytes, size, point(start + i))  # type: ignore
            source_sizes.append(size)
            source_mtimes.append(mtime)
            source_crcs.append(crc32(data) if reason is None else 0)
            source_crc = source_crcs[-1]
            if reason is None and validate != "none" and ext.lower() in images:
                reason = check_image(data, validate, job.max_pixels)
                signature = signatures.get(ext.lower())
                if reason is None and signature is not None and not data.startswith(signature):
                    mismatch = content_mismatch(rel, ext, data)
                    if mismatch is not None:
                        findings.append(mismatch)
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
                skipped.append(Skipped(rel, reason))
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
    n = len(key_lengths)
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
        locations[:, 1] = np.frombuffer(offsets, dtype=np.uint64)
        locations[:, 2] = np.frombuffer(lengths, dtype=np.uint64)
    if job.dry_run:
        data_file = DataFile(out.name, n, 0, "")
    else:
        sha256 = writer.sha256 or sha256_file(attempt)
        attempt.replace(out)
        data_file = DataFile(out.name, n, out.stat().st_size, sha256)
    kept = kept[:consumed]
    return ShardResult(
        shard=job.shard,
        data_file=data_file,
        labels=(
            job.labels[start : start + consumed][kept]
            if job.dataset is None
            else np.asarray(kept_labels, dtype=np.int32)
        ),
        locations=locations,
        crc32=np.asarray(crcs, dtype=np.uint32),
        extension_ids=(
            job.extension_ids[start : start + consumed][kept]
            if local_exts is None
            else np.asarray(ext_ids, dtype=np.uint16)
        ),
        key_blob=bytes(key_blob),
        key_lengths=np.frombuffer(key_lengths, dtype=np.uint32),
        skipped=skipped,
        source_bytes=source_bytes,
        payload_bytes=payload_bytes,
        start=start,
        consumed=consumed,
        planned_bytes=planned_bytes,
        findings=findings,
        ext_names=None if local_exts is None else list(local_exts),
        source_sizes=np.frombuffer(source_sizes, dtype=np.int64)[:consumed].copy(),
        source_mtimes=np.frombuffer(source_mtimes, dtype=np.int64)[:consumed].copy(),
        source_crc32=np.frombuffer(source_crcs, dtype=np.uint32)[:consumed].copy(),
    )


Item = tuple[str, str, str, str, int, bytes, int, int, str | None]
"""(name for the skipped list, where for errors, key, extension, label, bytes, source size,
source mtime_ns, reason it cannot be packed or None)"""


def _file_items(job: ShardJob, start: int, stop: int) -> Iterator[Item]:
    """Samples read from the files of a scan."""
    root = os.fspath(job.root) + os.sep
    full_keys = job.full_keys
    for rel, label in _rows(job, start, stop):
        reason: str | None = None
        try:
            data, mtime = read_file_stat(root + rel)
            size = len(data)
        except OSError as exc:
            data, mtime, reason = b"", 0, f"cannot read ({exc.strerror}); check its permissions"
            size = stat_size(root + rel)
        key, _, ext = rel.rpartition(".")
        if "/" in ext or not key or key[-1] == "/" or (full_keys and rel in full_keys):
            key, ext = sample_key(rel, rel in full_keys)  # rare: no extension, or kept
        yield rel, root + rel, key, ext, label, data, size, mtime, reason


def _dataset_items(job: ShardJob, stop: int) -> Iterator[Item]:
    """Samples from ``job.dataset`` (``convert_samples``); a malformed item is a UsageError."""
    for i in range(job.start, stop):
        key, label, data, ext = sample_fields(job.dataset[i], i)
        yield key, f"sample {i} ({key})", key, ext, label, data, len(data), 0, None


def sample_fields(item: Any, i: int) -> tuple[str, int, bytes, str]:
    """``(key, label, data, ext)`` of input item ``i``, checked; UsageError naming it if not."""
    try:
        if isinstance(item, Mapping):
            key, label, data, ext = item["key"], item["label"], item["data"], item["ext"]
        else:
            key, label, data, ext = item
    except (KeyError, TypeError, ValueError):
        raise UsageError(
            f"sample {i}: expected (key, label, data, ext) or a mapping with those keys, got "
            f"{type(item).__name__}"
        ) from None
    if not isinstance(key, str) or not isinstance(ext, str):
        raise UsageError(f"sample {i}: key and ext must be str")
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise UsageError(f"sample {i} ({key}): data must be bytes, got {type(data).__name__}")
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        raise UsageError(f"sample {i} ({key}): label must be an int")
    if "/" in ext or ext.startswith(".") or any(ch.isspace() for ch in ext):
        raise UsageError(f"sample {i} ({key}): extension {ext!r} must be a bare name like 'jpg'")
    try:
        safe_relative(key)
    except PackError:
        raise UsageError(
            f"sample {i}: key {key!r} must be a relative path without empty, '.' or '..' parts "
            "(`pack extract` writes it as one)"
        ) from None
    return key, int(label), data, ext


def _rows(job: ShardJob, start: int, stop: int) -> Iterator[tuple[str, int]]:
    """(path, label) of samples ``start..stop``, decoded a block at a time: the one-process writer
    gets every remaining sample as its range, and must not build lists of all of them."""
    block = 65536
    for a in range(start, stop, block):
        b = min(stop, a + block)
        yield from zip(job.paths[a:b], job.labels[a:b].tolist(), strict=True)


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
