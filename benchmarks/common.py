"""Shared helpers for the benchmark scripts: deterministic trees, timing, memory."""

from __future__ import annotations

import io
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def _write_class(args: tuple[Path, int, int, int, int]) -> int:
    root, label, count, size, seed = args
    rng = np.random.default_rng(seed * 100_003 + label)
    folder = root / f"class_{label:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        pixels[size // 4 : size // 2] = label * 37 % 256  # a little structure so PNG compresses
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "PNG")
        (folder / f"img_{i:07d}.png").write_bytes(buf.getvalue())
        total += buf.tell()
    return total


def make_png_tree(
    root: Path, *, images: int, classes: int = 10, size: int = 32, seed: int = 0
) -> Path:
    """``images`` random PNGs of ``size`` x ``size`` in ``classes`` folders (reused if present)."""
    marker = root / ".complete"
    if marker.exists():
        return root
    per_class = images // classes
    jobs = [(root, c, per_class, size, seed) for c in range(classes)]
    with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
        pool.map(_write_class, jobs)
    marker.write_text("ok")
    return root


def make_tiny_file_tree(root: Path, *, files: int, classes: int = 1000) -> Path:
    """``files`` copies of a valid 1x1 PNG (~70 bytes): for index/scaling measurements."""
    marker = root / ".complete"
    if marker.exists():
        return root
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = buf.getvalue()
    per_class = files // classes
    for c in range(classes):
        folder = root / f"c{c:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            with open(folder / f"{i:07d}.png", "wb") as f:
                f.write(data)
    marker.write_text("ok")
    return root


def median_time(fn: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")
