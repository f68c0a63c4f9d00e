"""``pack bench``: measure every format on the user's own data and machine, beside the plain folder.

Per system (the plain folder is always one, as the baseline) and per round, with systems rotated each
round: convert time, size (apparent bytes over the samples' source bytes, the figure ``pack
inspect`` gives), open time and RSS after open (in
a fresh subprocess), a sequential and a random raw-read pass and, with ``decode``, a torch DataLoader
pass decoding every image to a uint8 tensor. Medians over rounds are reported with min-max, and every
figure also as the median of its per-round ratio to the folder. Every pass checks that it read the
right number of samples and bytes, so a broken reader cannot look fast.

Results and their JSON are in :mod:`packer.bench.report`; page-cache tools in :mod:`packer._util.pagecache`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from packer._util.files import tree_bytes
from packer._util.pagecache import evict, files_of, resident_fraction, warm
from packer.backends.registry import backend_names
from packer.bench.report import FOLDER, BenchReport, SystemResult, recommend
from packer.conversion.driver import RunSettings, convert
from packer.conversion.options import ConvertOptions
from packer.errors import PackError, SourceError, UsageError, require_extra
from packer.progress import NoProgress, Progress
from packer.read.describe import inspect_pack
from packer.read.open import open_pack
from packer.read.pack import Pack
from packer.source.scanner import scan_tree
from packer.storage.store import is_url

_OPEN_PROBE = r"""
import json, sys, time
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmRSS:"))
kind, path = sys.argv[1], sys.argv[2]
import packer
from packer.source.scanner import scan_tree
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


def _decode_pass(system: str, path: Path | str, workers: int, n: int) -> float:
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    from packer.pytorch import PackDataset

    class FolderImages(Dataset[Any]):
        def __init__(self) -> None:
            self.reader = _FolderReader(Path(path))

        def __len__(self) -> int:
            return len(self.reader)

        def __getitem__(self, i: int) -> Any:
            with Image.open(self.reader.paths[i]) as im:
                arr = np.asarray(im.convert("RGB"))
            return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))

    ds: Any = FolderImages() if system == FOLDER else PackDataset(path, decode="tensor")
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
    names = _format_names(formats)
    if decode:
        require_extra("torch", "torch", "--decode")
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
        systems += [_existing(extra, n) for extra in packs]
        plan = _Plan(
            source=source,
            n=n,
            total=total,
            order=order,
            random_total=random_total,
            existing={s.name for s in systems[len(names) + 1 :]},
            cold=cold,
            decode=decode,
            workers=workers,
        )
        progress.start(
            repeat * len(systems) * (4 + int(decode)), f"bench {src_path.name}", unit="measurements"
        )
        for r in range(repeat):
            _one_round(systems[r % len(systems) :] + systems[: r % len(systems)], plan, progress)
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
            recommendation=recommend(systems),
        )
    finally:
        if keep is None:
            shutil.rmtree(work_root, ignore_errors=True)


def _format_names(formats: Sequence[str] | None) -> list[str]:
    """``--format`` values as backend names (``all``: every one); unknown names are refused."""
    known = backend_names()
    names = list(formats or ["all"])
    if names == ["all"]:
        return known
    for name in names:
        if name not in known:
            raise UsageError(f"unknown format {name!r}; available formats: {', '.join(known)}")
    return names


def _existing(extra: str | os.PathLike[str], n: int) -> SystemResult:
    """An existing pack measured beside the converted ones (``--pack``), of the same samples."""
    p: Path | str = os.fspath(extra) if is_url(extra) else Path(extra)
    with open_pack(p) as existing_pack:
        if len(existing_pack) != n:
            raise UsageError(
                f"{p}: has {len(existing_pack)} samples but the source has {n}; measure an "
                "existing pack against the tree it was made from (without --samples)"
            )
        name = str(p).rstrip("/").rsplit("/", 1)[-1]
        return SystemResult(f"{existing_pack.backend.name}:{name}", p)


def _one_round(rotated: list[SystemResult], plan: _Plan, progress: Progress) -> None:
    """One round over every system (in a rotated order, so none is always first); each value is
    also kept as a ratio to the plain folder's in the same round."""
    round_values: dict[str, dict[str, float]] = {}
    for system in rotated:
        values = _measure_round(system, plan, progress)
        round_values[system.name] = values
        for metric, value in values.items():
            system.metrics[metric].values.append(value)
    base = round_values[FOLDER]
    for system in rotated:
        for metric, value in round_values[system.name].items():
            if base.get(metric):
                system.ratios[metric].values.append(value / base[metric])


@dataclass
class _Plan:
    """What every round of every system measures against."""

    source: Path
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
        convert(
            Path(plan.source), Path(system.path), ConvertOptions(format=system.name), RunSettings()
        )
        values["convert_seconds"] = time.perf_counter() - start
    progress.advance(1, 0)
    remote = isinstance(system.path, str)  # a pack at a URL: no page cache to warm or evict
    # the definition `pack inspect` uses: apparent bytes of the pack over the samples' bytes
    size = inspect_pack(system.path)["pack_bytes"] if remote else tree_bytes(Path(system.path))
    values["size_ratio"] = size / max(1, plan.total)
    probe = subprocess.run(
        [sys.executable, "-c", _OPEN_PROBE, "folder" if is_folder else "pack", str(system.path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        raise PackError(f"{system.path}: opening it in a fresh process failed ({last})")
    values.update(json.loads(probe.stdout))
    progress.advance(1, 0)
    reader: Any = _FolderReader(Path(system.path)) if is_folder else open_pack(system.path)
    if len(reader) != plan.n:
        raise RuntimeError(f"{system.name}: has {len(reader)} samples, expected {plan.n}")

    def prepare() -> None:
        if remote:
            return
        assert isinstance(system.path, Path)
        if plan.cold:
            evict(system.path)
            largest = max(files_of(system.path), key=lambda p: p.stat().st_size)
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
