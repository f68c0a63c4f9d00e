"""``pack bench --plot``: a bar chart of a bench report (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from packer.errors import require_extra

if TYPE_CHECKING:
    from packer.api import BenchReport


def plot(report: BenchReport, path: str | os.PathLike[str]) -> None:
    """A bar chart of the main metrics, one panel each, formats vs the folder (needs matplotlib)."""
    require_extra("matplotlib", "plot", "--plot")
    import matplotlib

    from packer.api import FOLDER

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
