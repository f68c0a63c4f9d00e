"""Folder tree -> pack: plan shards, write them (in-process or in worker processes), index, commit.

Determinism: the shard plan is a pure function of the scanned file list, file sizes and options,
and each shard is written by the same function whichever process runs it, so ``--workers N``
output is byte-identical to ``--workers 1``. Memory: the scan holds one path string per file; each
shard's index rows are streamed to disk as the shard completes.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import time
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from packer import __version__
from packer.backends.base import Backend
from packer.errors import OutputError, SourceError, UsageError
from packer.images import (
    DEFAULT_MAX_PIXELS,
    EXTENSION_FORMATS,
    FORMAT_SIGNATURES,
    VALIDATE_MODES,
    check_image,
    decode_error_reason,
    pixel_limit,
    sniff_format,
)
from packer.manifest import INDEX_FILES, DataFile, IndexWriter, Manifest, sha256_file, tree_bytes
from packer.progress import NoProgress, Progress
from packer.registry import DEFAULT_FORMAT, get_backend_class, make_backend, pixel_formats
from packer.scanner import (
    DEFAULT_SYMLINKS,
    IMAGE_EXTENSIONS,
    MAX_LISTED,
    Finding,
    Omissions,
    Scan,
    Skipped,
    parse_extensions,
    sample_key,
    scan_tree,
    split_name,
)
from packer.staging import Staging, check_destination

if TYPE_CHECKING:
    from packer.transforms import Transform  # imports Pillow: only where a transform runs

DEFAULT_SHARD_SIZE = 1 << 30  # 1 GiB: few files, each far below any filesystem's limits
ON_ERROR_MODES = ("fail", "skip")
_UNITS = {
    "": 1,
    "B": 1,
    "K": 10**3,
    "KB": 10**3,
    "KIB": 2**10,
    "M": 10**6,
    "MB": 10**6,
    "MIB": 2**20,
    "G": 10**9,
    "GB": 10**9,
    "GIB": 2**30,
    "T": 10**12,
    "TB": 10**12,
    "TIB": 2**40,
}


def parse_size(text: str | int) -> int:
    """``512MB`` -> 512_000_000, ``1GiB`` -> 2**30, ``4096`` -> 4096."""
    if isinstance(text, int):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
        if not m or m.group(2).upper() not in _UNITS:
            raise UsageError(f"size {text!r} is not understood; write e.g. 512MB, 1GiB or 4096")
        value = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if value <= 0:
        raise UsageError(f"size {text!r} must be positive")
    return value


@dataclass(frozen=True)
class ShardJob:
    """Everything one process needs to write one shard; small and picklable."""

    shard: int
    root: str
    paths: list[str]
    labels: np.ndarray
    extension_ids: np.ndarray
    out_dir: str
    backend_name: str
    backend_options: dict[str, Any]
    validate: str
    on_error: str
    transform: dict[str, Any] | None = None
    pixel_shape: tuple[int, int, int] | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: write paths[start:stop]; with byte_limit, stop early before the sample that would take the
    #: shard's source bytes over it (the same greedy rule as plan_shards, decided while reading)
    start: int = 0
    stop: int | None = None
    byte_limit: int | None = None
    #: paths whose key keeps the extension (names differing only by extension)
    full_keys: frozenset[str] = frozenset()
    #: lower-case extensions of files that are images and so validated; others are plain bytes
    image_extensions: frozenset[str] = frozenset()
    #: check every sample, write nothing (``--dry-run``)
    dry_run: bool = False


@dataclass
class ShardResult:
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


@dataclass
class ConvertReport:
    """What ``convert`` did; ``to_dict`` is the ``pack convert --json`` document."""

    path: Path
    backend: str
    num_samples: int
    num_classes: int
    data_files: int
    payload_bytes: int
    pack_bytes: int
    source_bytes: int
    seconds: float
    skipped: list[Skipped] = field(default_factory=list)
    resumed_shards: int = 0
    ignored: Omissions = field(default_factory=Omissions)
    warnings: list[Finding] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "backend": self.backend,
            "dry_run": self.dry_run,
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
            "data_files": self.data_files,
            "payload_bytes": self.payload_bytes,
            "pack_bytes": self.pack_bytes,
            "source_bytes": self.source_bytes,
            "seconds": round(self.seconds, 3),
            "samples_per_second": round(self.num_samples / self.seconds, 1)
            if self.seconds
            else None,
            "skipped": [s.to_dict() for s in self.skipped],
            "resumed_shards": self.resumed_shards,
            "ignored": {
                "count": self.ignored.count,
                "by_reason": dict(sorted(self.ignored.by_reason.items())),
                "files": [s.to_dict() for s in self.ignored.listed],
            },
            "warnings": [w.to_dict() for w in self.warnings],
        }


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


def plan_shards(
    sizes: np.ndarray | None, n: int, shard_size: int | None, samples_per_shard: int | None
) -> list[tuple[int, int]]:
    """Cut samples ``0..n`` into contiguous ``(start, stop)`` shards, greedily by bytes and count."""
    if sizes is None and samples_per_shard is None:
        return [(0, n)]
    bounds: list[tuple[int, int]] = []
    start, nbytes = 0, 0
    limit_count = samples_per_shard or n
    size_list = sizes.tolist() if sizes is not None else None
    for i in range(n):
        size = size_list[i] if size_list is not None else 0
        full_count = i - start >= limit_count
        full_bytes = shard_size is not None and i > start and nbytes + size > shard_size
        if full_count or full_bytes:
            bounds.append((start, i))
            start, nbytes = i, 0
        nbytes += size
    bounds.append((start, n))
    return bounds


def _file_sizes(root: Path, paths: list[str]) -> np.ndarray:
    prefix = os.fspath(root) + os.sep
    return np.fromiter(
        (_stat_size(prefix + rel) for rel in paths), dtype=np.int64, count=len(paths)
    )


def read_file(path: str) -> bytes:
    """Whole-file read with three syscalls; ~2x faster than ``open().read()`` on small files."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)  # one byte more than expected reveals a file still growing
        if len(data) <= size:
            return data
        chunks = [data]
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
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
    out = Path(job.out_dir) / backend.data_file_name(job.shard)
    full_keys = job.full_keys
    images = job.image_extensions
    signatures = {e: FORMAT_SIGNATURES[f] for e, f in EXTENSION_FORMATS.items()}
    findings: list[Finding] = []
    transform: Transform | None = None
    if job.transform is not None:
        from packer.transforms import Transform

        transform = Transform.from_dict(job.transform)
    pixels = job.pixel_shape is not None
    payload_bytes = 0
    root = os.fspath(job.root) + os.sep
    start = job.start
    stop = len(job.paths) if job.stop is None else job.stop
    byte_limit = job.byte_limit
    planned_bytes = 0
    consumed = stop - start
    offsets, lengths, crcs = array("Q"), array("Q"), array("I")
    kept = np.zeros(stop - start, dtype=bool)
    key_blob = bytearray()
    key_lengths = array("I")
    skipped: list[Skipped] = []
    source_bytes = 0
    pending = pending_bytes = 0
    labels = job.labels[start:stop].tolist()
    validate = job.validate
    crc32 = zlib.crc32
    writer = _DiscardWriter(out) if job.dry_run else backend.open_writer(out)
    # One thread reads: a read-ahead thread was measured slower here (GIL hand-offs per file cost
    # more than the overlapped system calls save on small files).
    with writer:
        add = writer.add
        for i in range(stop - start):
            rel = job.paths[start + i]
            reason: str | None = None
            try:
                data = read_file(root + rel)
                size = len(data)
            except OSError as exc:
                data, reason = b"", f"cannot read ({exc.strerror}); check its permissions"
                size = _stat_size(root + rel)
            if byte_limit is not None and i and planned_bytes + size > byte_limit:
                consumed = i  # this sample opens the next shard
                break
            planned_bytes += size
            key, _, ext = rel.rpartition(".")
            if "/" in ext or not key or key[-1] == "/" or (full_keys and rel in full_keys):
                key, ext = sample_key(rel, rel in full_keys)  # rare: no extension, or kept
            if reason is None and validate != "none" and ext.lower() in images:
                reason = check_image(data, validate, job.max_pixels)
                signature = signatures.get(ext.lower())
                if reason is None and signature is not None and not data.startswith(signature):
                    _check_content(rel, ext, data, findings)
            if reason is None and transform is not None:
                try:
                    with pixel_limit(job.max_pixels):
                        if pixels:
                            data = transform.pixels(data).tobytes()
                        else:
                            data, ext = transform.encode(data)
                except UsageError:
                    raise
                except Exception as exc:  # Pillow raises many types for undecodable input
                    reason = decode_error_reason(exc)
            if reason is not None:
                if job.on_error == "fail" and not job.dry_run:
                    raise SourceError(
                        f"{root + rel}: {reason}; fix or remove the file, or pass --on-error skip"
                    )
                skipped.append(Skipped(rel, reason))
                continue
            offset, length = add(key, ext, labels[i], data)
            offsets.append(offset)
            lengths.append(length)
            crcs.append(crc32(data))
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
        data_file = DataFile(out.name, n, out.stat().st_size, writer.sha256 or sha256_file(out))
    kept = kept[:consumed]
    return ShardResult(
        job.shard,
        data_file,
        job.labels[start : start + consumed][kept],
        locations,
        np.asarray(crcs, dtype=np.uint32),
        job.extension_ids[start : start + consumed][kept],
        bytes(key_blob),
        np.frombuffer(key_lengths, dtype=np.uint32),
        skipped,
        source_bytes,
        payload_bytes,
        start,
        consumed,
        planned_bytes,
        findings,
    )


def _check_content(rel: str, ext: str, data: bytes, findings: list[Finding]) -> None:
    """Warn when a valid image's content is not the format its extension says (a PNG named .jpg)."""
    expected = EXTENSION_FORMATS.get(ext.lower())
    actual = sniff_format(data)
    if actual is not None and actual != expected:
        findings.append(
            Finding(
                "extension-mismatch",
                rel,
                f"content is {actual} but the extension says {expected} (decoders that trust the "
                "extension will fail; rename it)",
            )
        )


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


def _stat_size(path: str) -> int:
    """A file's size for the shard cut rule; 0 if it cannot be stat'ed (the read then reports the
    real error). The up-front plan and the writer's cut-while-reading both count with this."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _ignore_sigint() -> None:
    """Worker initializer: Ctrl-C is the parent's to handle; it then stops the workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _reusable(record: ShardResult | None, start: int, job: ShardJob) -> bool:
    """A finished shard of an interrupted run is reused only if it starts where this one must and
    its source files still have the sizes it was cut from (so every later boundary is the same)."""
    if record is None or record.start != start:
        return False
    root = os.fspath(job.root) + os.sep
    paths = job.paths[start : start + record.consumed]
    return (
        len(paths) == record.consumed
        and sum(_stat_size(root + p) for p in paths) == record.planned_bytes
    )


def _run_sequential(
    template: ShardJob, cap: int | None, progress: Progress, done: dict[int, ShardResult]
) -> Iterator[ShardResult]:
    """Write shards one after another in this process, cutting each by bytes while reading (no
    stat pass over the tree first)."""
    n = len(template.paths)
    position, shard = 0, 0
    while position < n:
        record = done.get(shard)
        if _reusable(record, position, template):
            assert record is not None
            progress.advance(record.data_file.num_samples, record.source_bytes)
            result = record
        else:
            done.clear()  # boundaries from here on may differ: nothing later can be reused
            stop = n if cap is None else min(n, position + cap)
            job = dataclasses.replace(template, shard=shard, start=position, stop=stop)
            result = write_shard(job, progress.advance)
        position += result.consumed
        shard += 1
        yield result


def _run_parallel(
    jobs: list[ShardJob], workers: int, progress: Progress, done: dict[int, ShardResult]
) -> Iterator[ShardResult]:
    """Write planned shards in a pool of ``workers`` processes; yield results in shard order."""
    reuse = {j.shard: done[j.shard] for j in jobs if _reusable(done.get(j.shard), j.start, j)}
    reuse = {k: r for k, r in reuse.items() if r.consumed == (jobs[k].stop or 0) - jobs[k].start}
    todo = [job for job in jobs if job.shard not in reuse]
    import concurrent.futures as cf
    import multiprocessing

    # spawn, not fork: the parent may hold threads (progress display) and open handles.
    ctx = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_ignore_sigint)
    futures: dict[int, cf.Future[ShardResult]] = {}
    queue = iter(todo)
    try:
        for job in queue:
            futures[job.shard] = pool.submit(write_shard, _compact(job))
            if len(futures) >= 2 * workers:
                break
        for job in jobs:
            if job.shard in reuse:
                result = reuse[job.shard]
            else:
                result = futures.pop(job.shard).result()
                following = next(queue, None)
                if following is not None:
                    futures[following.shard] = pool.submit(write_shard, _compact(following))
            progress.advance(result.data_file.num_samples, result.source_bytes)
            yield result
    except BaseException:
        # Ctrl-C, a bad file or a full disk: stop now, not after the running shards finish.
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _compact(job: ShardJob) -> ShardJob:
    """The job with only its own slice of the lists, so that what is pickled stays small."""
    a, b = job.start, job.stop
    return dataclasses.replace(
        job,
        paths=job.paths[a:b],
        labels=job.labels[a:b],
        extension_ids=job.extension_ids[a:b],
        start=0,
        stop=None,
    )


RESUME_DIR = ".resume"


def _plan_digest(job: ShardJob, backend: Backend[Any], extra: dict[str, Any]) -> str:
    """What a resumable partial pack was planned from: any change means starting over. (File
    sizes are checked per reused shard, see ``_reusable``.)"""
    h = hashlib.sha256()
    h.update(json.dumps([backend.name, backend.options.to_dict(), extra], sort_keys=True).encode())
    h.update(f"{len(job.paths)}\n".encode())
    h.update("\n".join(job.paths).encode("utf-8", "surrogateescape"))
    h.update(job.labels.tobytes())
    h.update(job.extension_ids.tobytes())
    return h.hexdigest()


def _save_result(folder: Path, result: ShardResult) -> None:
    """Record a finished shard so that ``--resume`` can reuse it (written atomically)."""
    stem = folder / f"shard-{result.shard:05d}"
    tmp = stem.with_suffix(".tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(
            f,
            labels=result.labels,
            locations=result.locations,
            crc32=result.crc32,
            extension_ids=result.extension_ids,
            key_lengths=result.key_lengths,
            key_blob=np.frombuffer(result.key_blob, dtype=np.uint8),
        )
    tmp.rename(stem.with_suffix(".npz"))
    info = {
        "data_file": result.data_file.to_dict(),
        "skipped": [x.to_dict() for x in result.skipped],
        "source_bytes": result.source_bytes,
        "payload_bytes": result.payload_bytes,
        "start": result.start,
        "consumed": result.consumed,
        "planned_bytes": result.planned_bytes,
        "findings": [x.to_dict() for x in result.findings],
    }
    stem.with_suffix(".tmp.json").write_text(json.dumps(info))
    stem.with_suffix(".tmp.json").rename(stem.with_suffix(".json"))


def _load_results(folder: Path, out_dir: Path) -> dict[int, ShardResult]:
    """Finished shards of an interrupted run whose data file is still exactly what was recorded."""
    found: dict[int, ShardResult] = {}
    for info_path in sorted(folder.glob("shard-*.json")):
        try:
            shard = int(info_path.stem.split("-")[1])
            info = json.loads(info_path.read_text())
            d = info["data_file"]
            data_file = DataFile(d["name"], d["num_samples"], d["bytes"], d["sha256"])
            path = out_dir / data_file.name
            if (
                not path.is_file()
                or path.stat().st_size != data_file.bytes
                or sha256_file(path) != data_file.sha256
            ):
                continue
            with np.load(info_path.with_suffix(".npz"), allow_pickle=False) as arrays:
                found[shard] = ShardResult(
                    shard,
                    data_file,
                    arrays["labels"],
                    arrays["locations"],
                    arrays["crc32"],
                    arrays["extension_ids"],
                    arrays["key_blob"].tobytes(),
                    arrays["key_lengths"],
                    [Skipped(x["path"], x["reason"]) for x in info["skipped"]],
                    int(info["source_bytes"]),
                    int(info["payload_bytes"]),
                    int(info["start"]),
                    int(info["consumed"]),
                    int(info["planned_bytes"]),
                    [Finding(x["kind"], x["path"], x["message"]) for x in info["findings"]],
                )
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue  # a record cut short by the crash: that shard is simply written again
    return found


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    format: str = DEFAULT_FORMAT,
    *,
    options: Mapping[str, Any] | None = None,
    shard_size: int | str | None = None,
    samples_per_shard: int | None = None,
    workers: int = 1,
    on_error: str = "fail",
    validate: str = "quick",
    force: bool = False,
    extensions: str | Iterable[str] | None = None,
    symlinks: str = DEFAULT_SYMLINKS,
    transform: Transform | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
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
        shard_size: cut data files at about this many payload bytes (``"512MB"`` or an int).
            Default 1 GiB when ``samples_per_shard`` is not given either.
        samples_per_shard: cut data files after this many samples.
        workers: processes writing shards in parallel; output is identical for any value.
        on_error: ``fail`` stops at the first bad file; ``skip`` leaves it out and records why.
        validate: ``none``, ``quick`` (signature + end marker) or ``full`` (decode every image).
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
            by ``quick`` validation and enforced while decoding.
        resume: continue an interrupted conversion to the same DST from its finished shards
            (each one checked by sha256); the result is byte-identical to an uninterrupted run.
        dry_run: scan, read and check every file and report every bad or ignored one; write
            nothing (``report.skipped`` lists the bad files whatever ``on_error`` is).
        progress: receives progress events (see :mod:`packer.progress`).
    """
    started = time.perf_counter()
    progress = progress or NoProgress()
    if on_error not in ON_ERROR_MODES:
        raise UsageError(f"--on-error {on_error!r} must be one of: {', '.join(ON_ERROR_MODES)}")
    if validate not in VALIDATE_MODES:
        raise UsageError(f"--validate {validate!r} must be one of: {', '.join(VALIDATE_MODES)}")
    if workers < 1:
        raise UsageError(f"--workers {workers} must be at least 1")
    if samples_per_shard is not None and samples_per_shard < 1:
        raise UsageError(f"--samples-per-shard {samples_per_shard} must be at least 1")
    limit = parse_size(shard_size) if shard_size is not None else None
    if limit is None and samples_per_shard is None:
        limit = DEFAULT_SHARD_SIZE
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
    scan = scan_tree(
        src_path,
        extensions=wanted,
        symlinks=symlinks,
        on_bad_file=None if on_error == "fail" and not dry_run else _keep_going,
    )
    skipped = list(scan.skipped)
    findings = list(scan.findings)
    if len(scan) == 0:
        listed = "every file" if wanted is None else "extensions " + ", ".join(sorted(wanted))
        hint = (
            "; symlinks leaving SRC were left out (pass --symlinks follow to pack them)"
            if scan.ignored.by_reason.get("symlink leaving SRC")
            else ""
        )
        seen = f" ({scan.ignored.summary()})" if scan.ignored.count else ""
        raise SourceError(
            f"{src_path}: no samples found; expected SRC/<class>/<file> with {listed}{seen}{hint}"
        )
    if transform is not None and transform.reencode is not None:
        ext_names = [transform.encode_extension]  # every sample is re-encoded to one format
        ext_ids = np.zeros(len(scan), dtype=np.uint16)
    else:
        exts = [p.rpartition(".")[2] for p in scan.paths]  # C speed; fixed below where wrong
        exts = [split_name(p)[1] if "/" in e else e for p, e in zip(scan.paths, exts, strict=True)]
        ext_names = sorted(set(exts))
        ext_lookup = {e: i for i, e in enumerate(ext_names)}
        ext_ids = np.fromiter((ext_lookup[e] for e in exts), np.uint16, len(scan))
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
        image_extensions=image_extensions(wanted),
        dry_run=dry_run,
    )

    def run_shards(template: ShardJob, done: dict[int, ShardResult]) -> Iterator[ShardResult]:
        if workers > 1:
            # Workers need the shard boundaries up front: plan them from file sizes, with the
            # very rule the sequential writer applies while reading (same output either way).
            sizes = _file_sizes(src_path, scan.paths) if limit is not None else None
            bounds = plan_shards(sizes, len(scan), limit, samples_per_shard)
            jobs = [
                dataclasses.replace(template, shard=k, start=a, stop=b, byte_limit=None)
                for k, (a, b) in enumerate(bounds)
            ]
            return _run_parallel(jobs, workers, progress, done)
        return _run_sequential(template, samples_per_shard, progress, done)

    if dry_run:
        return _dry_run(scan, template, run_shards, progress, started, backend.name, dst_path)
    try:
        with Staging(dst_path, force=force, keep_partial=resume) as staging:
            template = dataclasses.replace(template, out_dir=str(staging.path))
            done = _prepare_resume(
                staging.path, template, backend, [created_by, on_error, ext_names]
            )
            records = dict(done)
            results = run_shards(template, done)
            resumed = 0
            progress.start(len(scan), f"{src_path.name} -> {format}")
            index = IndexWriter(staging.path)
            data_files: list[DataFile] = []
            source_bytes = payload_bytes = 0
            counts = np.zeros(len(scan.classes), dtype=np.int64)
            try:
                for result in results:
                    if records.get(result.shard) is result:
                        resumed += 1
                    else:
                        _save_result(staging.path / RESUME_DIR, result)
                    index.append(
                        result.labels,
                        result.locations,
                        result.crc32,
                        result.extension_ids,
                        result.key_blob,
                        result.key_lengths,
                    )
                    data_files.append(result.data_file)
                    skipped.extend(result.skipped)
                    findings.extend(result.findings)
                    source_bytes += result.source_bytes
                    payload_bytes += result.payload_bytes
                    counts += np.bincount(result.labels, minlength=len(scan.classes))
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
            findings.extend(_duplicates_across_classes(scan, *_index_columns(staging.path)))
            _remove_strays(staging.path, {d.name for d in data_files})
            findings = findings[:MAX_LISTED]
            manifest = Manifest(
                backend=backend.name,
                options=backend.options.to_dict(),
                classes=scan.classes,
                class_counts=counts.tolist(),
                num_samples=index.count,
                payload_bytes=payload_bytes,
                data_files=data_files,
                extensions=ext_names,
                index_sha256=_index_digests(staging.path),
                source={
                    "files": len(scan) + len(scan.skipped),
                    "bytes": source_bytes,
                    "ignored_files": scan.ignored.count,
                    "ignored_by_reason": dict(sorted(scan.ignored.by_reason.items())),
                },
                created_by=created_by,
                skipped=[s.to_dict() for s in sorted(skipped, key=lambda s: s.path)],
                ignored=[s.to_dict() for s in scan.ignored.listed],
                warnings=[w.to_dict() for w in findings],
                transform=transform.to_dict() if transform is not None else None,
                sample_shape=list(pixel_shape) if pixel_shape is not None else None,
            )
            manifest.write(staging.path)
            pack_bytes = tree_bytes(staging.path)
            staging.commit()
    except OSError as exc:
        # Source read errors were handled per file; anything else is the output side failing.
        where = f" ({exc.filename})" if exc.filename else ""
        hint = (
            "free some disk space"
            if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
            else "check the destination"
        )
        raise OutputError(
            f"{dst_path}: writing the pack failed: {exc.strerror or exc}{where}; {hint}. "
            "Nothing was written and any previous pack is untouched"
        ) from None
    return ConvertReport(
        path=dst_path,
        backend=backend.name,
        num_samples=index.count,
        num_classes=len(scan.classes),
        data_files=len(data_files),
        payload_bytes=payload_bytes,
        pack_bytes=pack_bytes,
        source_bytes=source_bytes,
        seconds=time.perf_counter() - started,
        skipped=sorted(skipped, key=lambda s: s.path),
        resumed_shards=resumed,
        ignored=scan.ignored,
        warnings=findings,
    )


def _dry_run(
    scan: Scan,
    template: ShardJob,
    run_shards: Callable[[ShardJob, dict[int, ShardResult]], Iterator[ShardResult]],
    progress: Progress,
    started: float,
    backend: str,
    dst: Path,
) -> ConvertReport:
    """Every shard read and checked, nothing written: the report lists every bad file."""
    skipped = list(scan.skipped)
    findings = list(scan.findings)
    num_samples = source_bytes = payload_bytes = shards = 0
    columns: list[tuple[np.ndarray, np.ndarray, np.ndarray, bytes, np.ndarray]] = []
    progress.start(len(scan), f"check {scan.root.name}")
    try:
        for result in run_shards(template, {}):
            skipped.extend(result.skipped)
            findings.extend(result.findings)
            num_samples += result.data_file.num_samples
            source_bytes += result.source_bytes
            payload_bytes += result.payload_bytes
            shards += 1
            columns.append(
                (
                    result.labels,
                    result.crc32,
                    result.locations[:, 2],
                    result.key_blob,
                    result.key_lengths,
                )
            )
    finally:
        progress.finish()
    if columns:
        lengths = np.concatenate([c[4] for c in columns]).astype(np.uint64)
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.uint64)])
        findings.extend(
            _duplicates_across_classes(
                scan,
                np.concatenate([c[0] for c in columns]),
                np.concatenate([c[1] for c in columns]),
                np.concatenate([c[2] for c in columns]),
                b"".join(c[3] for c in columns),
                offsets,
            )
        )
    return ConvertReport(
        path=dst,
        backend=backend,
        num_samples=num_samples,
        num_classes=len(scan.classes),
        data_files=shards,
        payload_bytes=payload_bytes,
        pack_bytes=0,
        source_bytes=source_bytes,
        seconds=time.perf_counter() - started,
        skipped=sorted(skipped, key=lambda s: s.path),
        ignored=scan.ignored,
        warnings=findings[:MAX_LISTED],
        dry_run=True,
    )


def image_extensions(wanted: frozenset[str] | None) -> frozenset[str]:
    """Extensions of files that are validated as images: ImageFolder's list plus every format
    Pillow can open (``--extensions +avif``). Other files (``.npy``, ``.wav``) are packed as bytes.
    Pillow's plugin table is only consulted (imported) when ``wanted`` goes beyond the known list."""
    known = frozenset(IMAGE_EXTENSIONS) | frozenset(EXTENSION_FORMATS)
    if wanted is not None and wanted <= known:
        return known
    from PIL import Image, ImageFile

    Image.init()

    def real_decoder(fmt: str) -> bool:
        opener: object = Image.OPEN[fmt][0]
        return not (isinstance(opener, type) and issubclass(opener, ImageFile.StubImageFile))

    readable = {
        ext.lstrip(".").lower()
        for ext, fmt in Image.registered_extensions().items()
        if fmt in Image.OPEN and real_decoder(fmt)
    }
    return frozenset(readable) | known


def _index_columns(pack: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, bytes, np.ndarray]:
    """labels, crc32, payload lengths, key blob, key offsets of a finished index (memory-mapped)."""
    from packer.manifest import INDEX_DIR, KEYS_FILE

    index = pack / INDEX_DIR
    return (
        np.load(index / "labels.npy", mmap_mode="r"),
        np.load(index / "crc32.npy", mmap_mode="r"),
        np.load(index / "locations.npy", mmap_mode="r")[:, 2],
        (index / KEYS_FILE).read_bytes(),
        np.load(index / "key_offsets.npy", mmap_mode="r"),
    )


def _duplicates_across_classes(
    scan: Scan,
    labels: np.ndarray,
    crcs: np.ndarray,
    lengths: np.ndarray,
    keys: bytes,
    key_offsets: np.ndarray,
) -> list[Finding]:
    """Samples whose source bytes are identical but whose labels differ (a leak between classes).

    Candidates come from the index columns (same CRC-32 and length, different labels: vectorised,
    no per-sample objects); each candidate pair is confirmed by comparing the source files.
    """
    if len(labels) < 2:
        return []
    order = np.lexsort((labels, lengths, crcs))
    same = (crcs[order][1:] == crcs[order][:-1]) & (lengths[order][1:] == lengths[order][:-1])
    differ = labels[order][1:] != labels[order][:-1]
    hits = np.flatnonzero(same & differ)[:MAX_LISTED]
    if not len(hits):
        return []

    def key_of(i: int) -> str:
        return keys[int(key_offsets[i]) : int(key_offsets[i + 1])].decode(
            "utf-8", "surrogateescape"
        )

    pairs = [(int(order[h]), int(order[h + 1])) for h in hits.tolist()]
    wanted = {key_of(i) for pair in pairs for i in pair}
    source = {}  # key -> source path, for the few candidates only
    for p in scan.paths:
        if p.rpartition(".")[0] in wanted or p in wanted:  # cheap filter; sample_key decides
            source[sample_key(p, p in scan.full_keys)[0]] = p
    found: list[Finding] = []
    for a, b in pairs:
        pa, pb = source[key_of(a)], source[key_of(b)]
        try:
            equal = read_file(str(scan.root / pa)) == read_file(str(scan.root / pb))
        except OSError:
            continue
        if equal:
            found.append(
                Finding(
                    "same-bytes-two-classes",
                    pb,
                    f"identical to {pa}: the same file is labelled both "
                    f"{scan.classes[int(labels[a])]} and {scan.classes[int(labels[b])]}",
                )
            )
    return found


def _prepare_resume(
    partial: Path, template: ShardJob, backend: Backend[Any], extra: list[Any]
) -> dict[int, ShardResult]:
    """Finished shards to reuse from an interrupted run with the same plan; start the record."""
    folder = partial / RESUME_DIR
    digest = _plan_digest(template, backend, {"extra": extra})
    plan_file = folder / "plan"
    done: dict[int, ShardResult] = {}
    if plan_file.is_file() and plan_file.read_text() == digest:
        done = _load_results(folder, partial)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(exist_ok=True)
    plan_file.write_text(digest)
    return done


def _remove_strays(partial: Path, data_files: set[str]) -> None:
    """Drop the resume records and anything an interrupted run left that is not part of the pack."""
    shutil.rmtree(partial / RESUME_DIR, ignore_errors=True)
    for entry in partial.iterdir():
        if (
            entry.is_file()
            and entry.name not in data_files
            and not entry.name.startswith(".packer-owner")
        ):
            entry.unlink()


def _keep_going(skip: Skipped) -> None:
    """``on_bad_file`` for --on-error skip: the scan records the file, the convert goes on."""


def _index_digests(root: Path) -> dict[str, str]:
    return {name: sha256_file(root / name) for name in INDEX_FILES}
