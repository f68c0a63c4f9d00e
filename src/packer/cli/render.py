"""How the ``pack`` command shows things: progress on stderr, numbers, tables, JSON on stdout.

Kept apart from the commands (:mod:`packer.cli.main`, :mod:`packer.cli.read`) so that a command reads as: parse, call
:mod:`packer.api`, render.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.filesize import decimal
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Sequence

    from packer.api import BenchReport, ConvertReport, FormatInfo

# markup off: paths and messages print as they are (a file may be named `img[1].jpg`); the
# few styled lines pass markup=True and escape what they interpolate.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def print_json(doc: Any) -> None:
    """The one JSON document a ``--json`` command prints on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def human_bytes(n: float) -> str:
    """24500 -> '24.5 kB' (decimal units, like ``du --si``)."""
    return decimal(int(n))


def compact_number(value: float) -> str:
    """394_512 -> '395k': table cells stay narrow."""
    for threshold, unit, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / unit:.3g}{suffix}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


class CliProgress:
    """A rich progress bar on a terminal (one 80-column line: what, bar, done/total, rate, ETA);
    otherwise a plain line every few seconds (CI logs: never a line per item); nothing if quiet."""

    EVERY = 5.0  # seconds between plain lines

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.live = not quiet and err.is_terminal
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self.total = 0
        self.done = 0
        self.nbytes = 0
        self.description = ""
        self.unit = "samples"
        self._started = self._last = 0.0

    def start(self, total_samples: int, description: str, *, unit: str = "samples") -> None:
        self.total, self.done, self.nbytes = total_samples, 0, 0
        self.description, self.unit = description, unit
        self._started = self._last = time.perf_counter()
        if self.live:
            # at most 20 + 10 + 22 + 17 + 9 columns and 4 spaces: fits an 80-column terminal
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=10),
                TextColumn("{task.fields[count]}"),
                TextColumn("{task.fields[rate]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(compact=True),
                console=err,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                _fit(description, 20), total=total_samples, rate="", count=self._count()
            )

    def _count(self) -> str:
        return _fit(f"{compact_number(self.done)}/{compact_number(self.total)} {self.unit}", 22)

    def rate(self, *, short: bool = False) -> str:
        """'12.3k samples/s, 45.6 MB/s' ('12.3k/s 45.6 MB/s' for the bar, whose count column
        names the unit): the byte rate in units that never round a moving transfer to 0.0."""
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        text = f"{compact_number(self.done / elapsed)}{'' if short else ' ' + self.unit}/s"
        if self.nbytes:
            text += f"{' ' if short else ', '}{human_bytes(self.nbytes / elapsed)}/s"
        return text

    def eta(self) -> str:
        elapsed = time.perf_counter() - self._started
        if not self.done or self.done >= self.total:
            return "-"
        left = elapsed * (self.total - self.done) / self.done
        return time.strftime("%H:%M:%S", time.gmtime(left)) if left >= 3600 else f"{left:.0f} s"

    def advance(self, samples: int, nbytes: int) -> None:
        self.done += samples
        self.nbytes += nbytes
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task, advance=samples, rate=self.rate(short=True), count=self._count()
            )
        elif not self.quiet and time.perf_counter() - self._last >= self.EVERY:
            self._last = time.perf_counter()
            pct = 100.0 * self.done / self.total if self.total else 100.0
            err.print(
                f"{self.description}: {self.done}/{self.total} {self.unit} ({pct:.0f}%), "
                f"{self.rate()}, ETA {self.eta()}"
            )

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def throughput(seconds: float, count: int, unit: str, nbytes: int = 0) -> str:
    """'2.10 s (28.5k samples/s, 55.3 MB/s)': the end of every summary line."""
    if seconds <= 0:
        return f"{seconds:.2f} s"
    rate = f"{compact_number(count / seconds)} {unit}/s"
    if nbytes:
        rate += f", {human_bytes(nbytes / seconds)}/s"
    return f"{seconds:.2f} s ({rate})"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_inspect(info: dict[str, Any]) -> None:
    """``pack inspect`` without ``--json``: a header, totals, what was left out, two tables."""
    options = ", ".join(f"{k}={_word(v)}" for k, v in sorted(info["options"].items()))
    out.print(
        f"[bold]{escape(info['path'])}[/]  format [bold]{info['backend']}[/]"
        + (f" ({escape(options)})" if options else ""),
        markup=True,
    )
    ratio = f" ({info['size_vs_source']:.2f}x source)" if info["size_vs_source"] else ""
    out.print(
        f"{info['num_samples']} samples, {info['num_classes']} classes, {len(info['data_files'])} data "
        f"file(s), {human_bytes(info['pack_bytes'])} on disk{ratio}, made by packer "
        f"{info['created_by'].get('version', '?')}"
    )
    if info["transform"]:
        out.print(f"transform: {transform_words(info['transform'], info['sample_shape'])}")
    if info["skipped"]:
        out.print(f"{len(info['skipped'])} source file(s) were skipped when packing (see --json)")
    if info["ignored_files"]:
        reasons = ", ".join(f"{n} {r}" for r, n in info["ignored_by_reason"].items())
        out.print(f"{info['ignored_files']} source file(s) were not samples: {reasons}")
    if info["warnings"]:
        out.print(f"{len(info['warnings'])} warning(s) when packing (see --json):")
        for w in info["warnings"][:10]:
            out.print(f"  {w.get('path', '?')}: {w.get('message', '')}")
    table = Table("label", "class", "samples", title="classes")
    for c in info["classes"]:
        table.add_row(str(c["label"]), c["name"], str(c["count"]))
    out.print(table)
    files = Table("data file", "samples", "bytes", title="data files")
    for d in info["data_files"]:
        files.add_row(d["name"], str(d["num_samples"]), human_bytes(d["bytes"]))
    out.print(files)


def _word(value: Any) -> str:
    """An option value as a user would type it: true/false, none, plain numbers and strings."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value))
    return str(value)


def transform_words(t: dict[str, Any], shape: list[int] | None) -> str:
    """A transform in words: 'resized to 64x64 (center-crop), RGB, stored as 64x64x3 pixels'."""
    size = t.get("size")
    parts = [
        f"resized to {size[0]}x{size[1]} ({t.get('resize', 'stretch')})" if size else "size kept"
    ]
    if t.get("mode"):
        parts.append(f"converted to {t['mode']}")
    if shape:
        parts.append(f"stored as {'x'.join(map(str, shape))} pixels (HxWxC)")
    elif t.get("reencode"):
        parts.append(f"re-encoded as {t['reencode']}")
    return ", ".join(parts)


def _bins(histogram: list[int], edges: list[int]) -> str:
    """'<32:0 32-64:10 ...' without the empty bins at either end."""
    labels = [f"{a}-{b}" for a, b in itertools.pairwise(edges)] + [f">={edges[-1]}"]
    nonzero = [i for i, n in enumerate(histogram) if n]
    if not nonzero:
        return "-"
    return " ".join(f"{labels[i]}:{histogram[i]}" for i in range(nonzero[0], nonzero[-1] + 1))


def _spread(d: dict[str, Any], sep: str = " / ") -> str:
    if d["min"] is None:
        return "-"
    return f"{d['min']}{sep}{d['median']:g}{sep}{d['max']}"


def render_stats(stats: dict[str, Any]) -> None:
    """``pack inspect --stats``: the overall figures, then a row per class."""
    o = stats["overall"]
    edges = stats["size_bins"]
    out.print(f"[bold]stats[/] of {o['samples']} samples (from image headers)", markup=True)
    out.print("  formats: " + ", ".join(f"{k} {v}" for k, v in o["formats"].items()))
    out.print("  modes:   " + ", ".join(f"{k} {v}" for k, v in o["modes"].items()))
    out.print(
        f"  width  min/median/max {_spread(o['width'])}   px bins {_bins(o['width']['histogram'], edges)}"
    )
    out.print(
        f"  height min/median/max {_spread(o['height'])}   px bins {_bins(o['height']['histogram'], edges)}"
    )
    b = o["bytes"]
    if b["min"] is not None:
        out.print(
            f"  bytes per sample min/median/max {human_bytes(b['min'])} / "
            f"{human_bytes(b['median'])} / {human_bytes(b['max'])} (mean {human_bytes(b['mean'])})"
        )
    table = Table("class", "samples", "formats", "modes", "width", "height", "bytes",
                  title="per class (sizes min/median/max, median bytes)")  # fmt: skip
    for c in stats["classes"]:
        table.add_row(
            c["name"],
            str(c["samples"]),
            ", ".join(c["formats"]),
            ", ".join(c["modes"]),
            _spread(c["width"], "/"),
            _spread(c["height"], "/"),
            human_bytes(c["bytes"]["median"]) if c["bytes"]["median"] is not None else "-",
        )
    out.print(table)


def render_bench(report: BenchReport, sort: str) -> None:
    """``pack bench``'s table, sorted by ``sort``, with each figure's ratio to the plain folder."""
    from packer.api import FOLDER, METRICS, recommendation_line

    higher_is_better = METRICS[sort][1]
    rows = sorted(
        report.results,
        key=lambda r: (
            r.median(sort) is None,
            -(r.median(sort) or 0) if higher_is_better else (r.median(sort) or 0),
        ),
    )
    table = Table(
        title=f"{report.samples} samples, {human_bytes(report.source_bytes)}, median of {report.rounds}"
    )
    table.add_column("system")
    shown = [m for m in METRICS if any(r.metrics[m].values for r in report.results)]
    for metric in shown:
        table.add_column(METRICS[metric][0], justify="right")
    for r in rows:
        cells = []
        for metric in shown:
            value, ratio = r.median(metric), r.ratios[metric].median
            if value is None:
                cells.append("-")
                continue
            text = compact_number(value)
            if (
                ratio is not None
                and r.name != FOLDER
                and metric not in ("size_ratio", "convert_seconds")
            ):
                text += f" ({ratio:.1f}x)"
            cells.append(text)
        table.add_row(r.name, *cells)
    (out if out.is_terminal else Console(highlight=False, width=200)).print(table)
    if report.cold:
        state = {True: "took effect", False: "did NOT take effect", None: "could not be checked"}
        out.print(f"page-cache eviction before each pass {state[report.cold_effective]}")
    out.print(recommendation_line(report))


def render_formats(found: Sequence[FormatInfo]) -> None:
    """``pack formats`` without ``--json``: one row per backend."""
    table = Table("format", "from", "options (default)", "description")
    for f in found:
        opts = ", ".join(f"{k}={v}" for k, v in f["options"].items()) or "-"
        table.add_row(f["name"], f["origin"], opts, f["error"] or f["summary"])
    out.print(table)


def render_convert(report: ConvertReport, *, quiet: bool, json_out: bool) -> None:
    """Bad and ignored files and warnings on stderr; the JSON report or one summary line on stdout."""
    if not quiet:
        for s in report.skipped:
            err.print(f"{'bad' if report.dry_run else 'skipped'} {s.path}: {s.reason}")
        for w in report.warnings:
            err.print(f"warning: {w.path}: {w.message}")
        if report.ignored.count:
            err.print(report.ignored.summary())
        if report.resumed_shards:
            err.print(f"resumed: {report.resumed_shards} finished shard(s) reused")
    changes = report.update
    if json_out:
        print_json(report.to_dict())
    elif changes is not None and changes["up_to_date"]:
        refreshed = changes["refreshed_timestamps"]
        out.print(
            f"{report.location}: up to date ({report.num_samples} samples); nothing was written"
            + (f" but {refreshed} refreshed timestamp(s) in its update state" if refreshed else "")
        )
    elif report.dry_run:
        out.print(
            f"dry run: {report.num_samples} samples ({report.num_classes} classes) would be "
            f"packed, {len(report.skipped)} bad file(s), {report.ignored.count} ignored, "
            f"{len(report.warnings)} warning(s); nothing was written"
        )
    else:
        ratio = report.pack_bytes / report.source_bytes if report.source_bytes else 0.0
        out.print(
            f"packed {report.num_samples} samples ({report.num_classes} classes) into "
            f"{report.location}: {report.data_files} {report.backend} file(s), "
            f"{human_bytes(report.pack_bytes)} ({ratio:.2f}x source) in "
            f"{throughput(report.seconds, report.num_samples, 'samples', report.source_bytes)}"
            + (f"; {len(report.skipped)} file(s) skipped" if report.skipped else "")
        )
        if changes is not None:
            files, shards = changes["files"], changes["shards"]
            why = changes["rebuild"] or (
                f"{files['added']} added, {files['changed']} changed, {files['removed']} removed"
            )
            out.print(
                f"updated: {why}; {shards['to_rewrite']} of {shards['total']} shard(s) written, "
                f"{shards['total'] - shards['to_rewrite']} kept"
            )
