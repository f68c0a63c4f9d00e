"""``pack bench`` results: per-system medians and ratios to the plain folder, the JSON document
and the recommendation line. Rendering (tables, plots) is the CLI's job."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packer._version import __version__

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
    path: Path | str  # a str for a pack at a URL
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


def recommend(systems: list[SystemResult]) -> dict[str, str | None]:
    """The fastest format per way of reading (``decode``: None unless --decode was measured)."""
    formats = [s for s in systems if s.name != FOLDER]

    def best(metric: str) -> str | None:
        scored = [(s.median(metric), s.name) for s in formats if s.median(metric) is not None]
        return max(scored)[1] if scored else None

    return {
        "sequential": best("seq_samples_per_s"),
        "random": best("random_samples_per_s"),
        "decode": best("decode_images_per_s"),
    }


def recommendation_line(report: BenchReport) -> str:
    """One sentence: the format to use and why. With decoding measured, decoded images per second
    decide (what a training loop sees); otherwise random raw reads (a shuffled epoch)."""

    def figure(kind: str, metric: str) -> tuple[str, str]:
        name = report.recommendation.get(kind)
        if name is None:
            return "none", ""
        result = next(r for r in report.results if r.name == name)
        ratio = result.ratios[metric].median
        return name, f" ({ratio:.1f}x the plain folder)" if ratio else ""

    random_name, random_ratio = figure("random", "random_samples_per_s")
    seq_name, seq_ratio = figure("sequential", "seq_samples_per_s")
    if report.recommendation.get("decode"):
        name, ratio = figure("decode", "decode_images_per_s")
        return (
            f"recommended: {name}, which a DataLoader with {report.decode_workers} worker(s) "
            f"decoded fastest{ratio}: decoding, not reading, paces training here (fastest raw "
            f"reads: {random_name} random{random_ratio}, {seq_name} sequential{seq_ratio})"
        )
    if random_name == "none":
        return "recommended: none (no format measured)"
    return (
        f"recommended: {random_name}, the fastest random reads{random_ratio}, what a shuffled "
        f"epoch does (sequential: {seq_name}{seq_ratio}); add --decode to rank by decoded images/s"
    )
