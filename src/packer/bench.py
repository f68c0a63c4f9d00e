"""``pack bench``: measure every format on the user's own data and machine, beside the plain folder.

Per system (the plain folder is always one, as the baseline) and per round, with systems rotated each
round: convert time, size on disk (allocated blocks, like ``du``), open time and RSS after open (in
a fresh subprocess), a sequential and a random raw-read pass and, with ``decode``, a torch DataLoader
pass decoding every image to a uint8 tensor. Medians over rounds are reported with min-max, and every
figure also as the median of its per-round ratio to the folder. Every pass checks that it read the
right number of samples and bytes, so a broken reader cannot look fast.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import mmap
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from packer import __version__
from packer.conversion import convert
from packer.errors import PackError, SourceError, UsageError
from packer.pack import Pack, open_pack
from packer.progress import NoProgress, Progress
from packer.registry import backend_names
from packer.scanner import scan_tree

FOLDER = "folder"
#: metric -> (label, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "convert_seconds": ("convert s", False),
    "size_ratio": ("size vs src", False),
    "open_ms": ("open ms", False),
    "open_rss_mb": ("RSS MB", False),
    "seq_samples_per_s": ("seq/s", True),
    "seq_mb_per_s": ("seq MB/s", True),
    "random_samples_per_s": ("random/s", True),
    "decode_images_per_s": ("decode img/s", True),
}

_OPEN_PROBE = r"""
import json, sys, time
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmRSS:"))
kind, path = sys.argv[1], sys.argv[2]
import packer
from packer.scanner import scan_tree
before = rss()
start = time.perf_counter()
if kind == "folder":
    scan = scan_tree(path)
    with open(scan.root / scan.paths[0], "rb") as f:
        f.read()
else:
    pack = packer.open_pack(path)
    pack.read(0)
print(json.dumps({"open_ms": (time.perf_counter() - start) * 1e3, "open_rss_mb": rss() - before}))
"""


@dataclass
class Stat:
    """Median and range of one metric over rounds."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def to_dict(self) -> dict[str, float | None]:
        return {
            "median": self.median,
            "min": min(self.values) if self.values else None,
            "max": max(self.values) if self.values else None,
        }


@dataclass
class SystemResult:
    """Everything measured for one system (a format, or the plain folder)."""

    name: str
    path: Path
    metrics: dict[str, Stat] = field(default_factory=lambda: {m: Stat() for m in METRICS})
    ratios: dict[str, Stat] = field(default_factory=lambda: {m: Stat() for m in METRICS})

    def median(self, metric: str) -> float | None:
        return self.metrics[metric].median

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items() if v.values},
            "vs_folder": {k: v.median for k, v in self.ratios.items() if v.values},
        }


@dataclass
class BenchReport:
    """The ``pack bench --json`` document."""

    source: str
    samples: int
    source_bytes: int
    rounds: int
    random_reads: int
    cold: bool
    cold_effective: bool | None
    decode_workers: int | None
    results: list[SystemResult]
    recommendation: dict[str, str | None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "packer-bench-v1",
            "packer_version": __version__,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "source": self.source,
            "samples": self.samples,
            "source_bytes": self.source_bytes,
            "rounds": self.rounds,
            "random_reads": self.random_reads,
            "cold": self.cold,
            "cold_effective": self.cold_effective,
            "decode_workers": self.decode_workers,
            "results": [r.to_dict() for r in self.results],
            "recommendation": self.recommendation,
        }


def allocated_bytes(path: Path) -> int:
    """Bytes actually allocated on disk (``du``), for a file or a tree."""
    files = (
        [path]
        if path.is_file()
        else [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    )
    return sum(p.stat().st_blocks * 512 for p in files)


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def evict(path: Path) -> None:
    """Drop a file or tree from the page cache (flushing dirty pages first)."""
    for file in _files(path):
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(path: Path) -> None:
    """Read a file or tree through once, so that a warm pass measures reading, not the disk (some
    machines reclaim idle page cache quickly)."""
    buffer = bytearray(1 << 20)
    for file in _files(path):
        with open(file, "rb", buffering=0) as f:
            while f.readinto(buffer):
                pass


def resident_fraction(path: Path) -> float | None:
    """Fraction of a file's pages in the page cache (``mincore``), or None where unavailable."""
    libc_name = ctypes.util.find_library("c")
    size = path.stat().st_size
    if libc_name is None or size == 0:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    page = mmap.PAGESIZE
    pages = (size + page - 1) // page
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
    try:
        address = ctypes.addressof(ctypes.c_char.from_buffer(mapped))
        vec = (ctypes.c_ubyte * pages)()
        if libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(size), vec) != 0:
            return None
        return sum(v & 1 for v in vec) / pages
    finally:
        del address
        mapped.close()


def make_sample_tree(src: Path, out: Path, count: int, seed: int = 0) -> Path:
    """A deterministic sample of ``count`` files of ``src``, hard-linked (or copied) into ``out``."""
    scan = scan_tree(src)
    if count >= len(scan):
        return src
    chosen = np.sort(np.random.default_rng(seed).choice(len(scan), size=count, replace=False))
    for i in chosen.tolist():
        rel = scan.paths[i]
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(scan.root / rel, target)
        except OSError:
            shutil.copyfile(scan.root / rel, target)
    return out


class _FolderReader:
    """The baseline: read the plain files by path, as an ImageFolder-style loader does."""

    def __init__(self, root: Path) -> None:
        scan = scan_tree(root)
        self.paths = [str(scan.root / p) for p in scan.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> bytes:
        with open(self.paths[i], "rb") as f:
            return f.read()


def _timed(fn: Callable[[], int], expected: int, what: str) -> float:
    start = time.perf_counter()
    got = fn()
    elapsed = time.perf_counter() - start
    if got != expected:
        raise RuntimeError(f"{what}: read {got} bytes, expected {expected}: the reader is broken")
    return elapsed


def _decode_pass(system: str, path: Path, workers: int, n: int) -> float:
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    from packer.pytorch import PackDataset

    class FolderImages(Dataset[Any]):
        def __init__(self) -> None:
            self.reader = _FolderReader(path)

        def __len__(self) -> int:
            return len(self.reader)

        def __getitem__(self, i: int) -> Any:
            with Image.open(self.reader.paths[i]) as im:
                arr = np.asarray(im.convert("RGB"))
            return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))

    ds: Any = FolderImages() if system == FOLDER else PackDataset(path, decode="tensor", mode="xy")
    loader = DataLoader(ds, batch_size=64, num_workers=workers, collate_fn=list)
    start = time.perf_counter()
    count = sum(len(batch) for batch in loader)
    elapsed = time.perf_counter() - start
    if count != n:
        raise RuntimeError(f"{system}: decode pass read {count} images, expected {n}")
    return n / elapsed


def bench(
    src: str | os.PathLike[str],
    *,
    formats: Sequence[str] | None = None,
    packs: Sequence[str | os.PathLike[str]] = (),
    samples: int | None = None,
    repeat: int = 3,
    random_reads: int = 20_000,
    decode: bool = False,
    workers: int = 2,
    cold: bool = False,
    keep: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    """Benchmark ``formats`` (default: every registered one) on ``src``; see the module docstring.

    Args:
        src: the image tree (the plain-folder baseline, and what is converted).
        formats: backend names to convert and measure; ``["all"]`` or None for every backend.
        packs: existing packs to measure as well (not converted; their convert time is not known).
        samples: measure a deterministic sample of this many files instead of the whole tree.
        repeat: rounds; medians are reported.
        random_reads: reads per random pass.
        decode: also run a torch DataLoader pass decoding to uint8 tensors (needs torch).
        workers: DataLoader workers for the decode pass.
        cold: evict each system's files from the page cache before each read pass.
        keep: keep the converted packs in this folder (default: a temporary folder, removed).
        progress: receives one step per measurement.
    """
    progress = progress or NoProgress()
    if repeat < 1 or random_reads < 1:
        raise UsageError("--repeat and --random must be at least 1")
    names = list(formats or ["all"])
    if names == ["all"]:
        names = backend_names()
    known = backend_names()
    for name in names:
        if name not in known:
            raise UsageError(f"unknown format {name!r}; available formats: {', '.join(known)}")
    if decode:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise UsageError("--decode needs torch: pip install packer[torch]") from None
    src_path = Path(src)
    work_root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="packer-bench-"))
    work_root.mkdir(parents=True, exist_ok=True)
    try:
        source = make_sample_tree(src_path, work_root / "sample", samples) if samples else src_path
        reader = _FolderReader(source)
        n = len(reader)
        if n == 0:
            raise SourceError(f"{src_path}: no samples found to benchmark")
        sizes = np.fromiter((os.stat(p).st_size for p in reader.paths), dtype=np.int64, count=n)
        total = int(sizes.sum())
        order = np.random.default_rng(0).integers(0, n, size=random_reads).tolist()
        random_total = int(sizes[order].sum())
        systems = [SystemResult(FOLDER, source)]
        systems += [SystemResult(name, work_root / f"{name}.pack") for name in names]
        for extra in packs:
            p = Path(extra)
            with open_pack(p) as existing_pack:
                if len(existing_pack) != n:
                    raise UsageError(
                        f"{p}: has {len(existing_pack)} samples but the source has {n}; measure an "
                        "existing pack against the tree it was made from (without --samples)"
                    )
                systems.append(SystemResult(f"{existing_pack.backend.name}:{p.name}", p))
        plan = _Plan(
            source=source,
            source_allocated=allocated_bytes(source),
            n=n,
            total=total,
            order=order,
            random_total=random_total,
            existing={s.name for s in systems[len(names) + 1 :]},
            cold=cold,
            decode=decode,
            workers=workers,
        )
        progress.start(repeat * len(systems) * (4 + int(decode)), f"bench {src_path.name}")
        for r in range(repeat):
            rotated = systems[r % len(systems) :] + systems[: r % len(systems)]
            round_values: dict[str, dict[str, float]] = {}
            for system in rotated:
                values = _measure_round(system, plan, progress)
                round_values[system.name] = values
                for metric, value in values.items():
                    system.metrics[metric].values.append(value)
            base = round_values[FOLDER]
            for system in systems:
                for metric, value in round_values[system.name].items():
                    if base.get(metric):
                        system.ratios[metric].values.append(value / base[metric])
        progress.finish()
        return BenchReport(
            source=str(src_path),
            samples=n,
            source_bytes=total,
            rounds=repeat,
            random_reads=len(order),
            cold=cold,
            cold_effective=(max(plan.cold_checks) < 0.05) if plan.cold_checks else None,
            decode_workers=workers if decode else None,
            results=systems,
            recommendation=_recommend(systems),
        )
    finally:
        if keep is None:
            shutil.rmtree(work_root, ignore_errors=True)


@dataclass
class _Plan:
    """What every round of every system measures against."""

    source: Path
    source_allocated: int
    n: int
    total: int
    order: list[int]
    random_total: int
    existing: set[str]
    cold: bool
    decode: bool
    workers: int
    cold_checks: list[float] = field(default_factory=list)


def _measure_round(system: SystemResult, plan: _Plan, progress: Progress) -> dict[str, float]:
    values: dict[str, float] = {}
    is_folder = system.name == FOLDER
    if not is_folder and system.name not in plan.existing:
        shutil.rmtree(system.path, ignore_errors=True)
        start = time.perf_counter()
        convert(plan.source, system.path, system.name)
        values["convert_seconds"] = time.perf_counter() - start
    progress.advance(1, 0)
    values["size_ratio"] = allocated_bytes(system.path) / max(1, plan.source_allocated)
    probe = subprocess.run(
        [sys.executable, "-c", _OPEN_PROBE, "folder" if is_folder else "pack", str(system.path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        raise PackError(f"{system.path}: opening it in a fresh process failed ({last})")
    values.update(json.loads(probe.stdout))
    progress.advance(1, 0)
    reader: Any = _FolderReader(system.path) if is_folder else open_pack(system.path)
    if len(reader) != plan.n:
        raise RuntimeError(f"{system.name}: has {len(reader)} samples, expected {plan.n}")

    def prepare() -> None:
        if plan.cold:
            evict(system.path)
            largest = max(_files(system.path), key=lambda p: p.stat().st_size)
            fraction = resident_fraction(largest)
            if fraction is not None:
                plan.cold_checks.append(fraction)
        else:
            warm(system.path)

    def sequential() -> int:
        read = reader.read
        return sum(len(read(i)) for i in range(plan.n))

    def random() -> int:
        read = reader.read
        return sum(len(read(i)) for i in plan.order)

    prepare()
    seconds = _timed(sequential, plan.total, f"{system.name} sequential pass")
    values["seq_samples_per_s"] = plan.n / seconds
    values["seq_mb_per_s"] = plan.total / seconds / 1e6
    progress.advance(1, 0)
    prepare()  # the pack stays open: the random pass measures steady-state reads, as in training
    values["random_samples_per_s"] = len(plan.order) / _timed(
        random, plan.random_total, f"{system.name} random pass"
    )
    progress.advance(1, 0)
    if isinstance(reader, Pack):
        reader.close()
    if plan.decode:
        prepare()
        values["decode_images_per_s"] = _decode_pass(
            FOLDER if is_folder else "pack", system.path, plan.workers, plan.n
        )
        progress.advance(1, 0)
    return values


def _recommend(systems: list[SystemResult]) -> dict[str, str | None]:
    formats = [s for s in systems if s.name != FOLDER]

    def best(metric: str) -> str | None:
        scored = [(s.median(metric), s.name) for s in formats if s.median(metric) is not None]
        return max(scored)[1] if scored else None

    return {"sequential": best("seq_samples_per_s"), "random": best("random_samples_per_s")}


def plot(report: BenchReport, path: str | os.PathLike[str]) -> None:
    """A bar chart of the main metrics, one panel each, formats vs the folder (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install packer[plot]") from None
    panels = [
        ("random_samples_per_s", "random reads / s"),
        ("seq_samples_per_s", "sequential reads / s"),
        ("convert_seconds", "convert time (s)"),
        ("size_ratio", "size on disk / source"),
    ]
    if report.decode_workers:
        panels.append(
            ("decode_images_per_s", f"DataLoader decode img/s ({report.decode_workers} workers)")
        )
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2))
    for ax, (metric, title) in zip(axes, panels, strict=True):
        rows = [(r.name, r.metrics[metric]) for r in report.results if r.metrics[metric].values]
        names = [name for name, _ in rows]
        medians = [stat.median or 0.0 for _, stat in rows]
        low = [m - min(stat.values) for m, (_, stat) in zip(medians, rows, strict=True)]
        high = [max(stat.values) - m for m, (_, stat) in zip(medians, rows, strict=True)]
        colors = ["#999999" if name == FOLDER else "#2b6cb0" for name in names]
        ax.bar(names, medians, yerr=[low, high], color=colors, capsize=3)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", rotation=45, labelsize=8)
    fig.suptitle(
        f"pack bench: {report.samples} samples, {report.source_bytes / 1e6:.0f} MB, median of {report.rounds}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def recommendation_line(report: BenchReport) -> str:
    def describe(kind: str, metric: str) -> str:
        name = report.recommendation.get(kind)
        if name is None:
            return f"{kind}: no format measured"
        result = next(r for r in report.results if r.name == name)
        ratio = result.ratios[metric].median
        return f"{kind} reads: {name}" + (f" ({ratio:.1f}x the plain folder)" if ratio else "")

    return (
        "recommended for "
        + describe("random", "random_samples_per_s")
        + "; for "
        + describe("sequential", "seq_samples_per_s")
    )
