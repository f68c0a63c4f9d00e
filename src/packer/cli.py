"""The ``pack`` command: parse arguments, call :mod:`packer.api`, render with rich.

stdout carries results only (``--json`` prints exactly one JSON document); progress, warnings and
errors go to stderr. A :class:`~packer.errors.PackerError` becomes one line and its exit code.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from packer import __version__
from packer.errors import (
    EXIT_INTERRUPTED,
    EXIT_PROBLEMS_FOUND,
    PackerError,
    SourceError,
    UsageError,
)
from packer.images import DEFAULT_MAX_PIXELS

app = typer.Typer(
    name="pack",
    help="Turn folder trees of many small images into a few large packed files, and read them fast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


def _handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """User mistakes and damaged input: one line on stderr and a documented exit code, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except PackerError as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted; nothing was written")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class CliProgress:
    """Rich progress bar on a terminal; a plain line every few seconds otherwise; nothing if quiet."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.live = not quiet and err.is_terminal
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self.total = 0
        self.done = 0
        self.nbytes = 0
        self.description = ""
        self._started = self._last = 0.0

    def start(self, total_samples: int, description: str) -> None:
        self.total, self.done, self.nbytes, self.description = total_samples, 0, 0, description
        self._started = self._last = time.perf_counter()
        if self.live:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(description, total=total_samples, rate="")

    def _rate(self) -> str:
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        return f"{self.done / elapsed:,.0f} samples/s, {self.nbytes / elapsed / 1e6:,.1f} MB/s"

    def advance(self, samples: int, nbytes: int) -> None:
        self.done += samples
        self.nbytes += nbytes
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=samples, rate=self._rate())
        elif not self.quiet and time.perf_counter() - self._last >= 5.0:
            self._last = time.perf_counter()
            pct = 100.0 * self.done / self.total if self.total else 100.0
            err.print(
                f"{self.description}: {self.done}/{self.total} samples ({pct:.0f}%), {self._rate()}"
            )

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _compact(value: float) -> str:
    """394_512 -> '395k': table cells stay narrow."""
    for threshold, unit, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / unit:.3g}{suffix}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def _parse_options(pairs: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise UsageError(
                f"-o {pair!r} must look like key=value (see `pack formats` for each format's options)"
            )
        options[key.strip()] = value.strip()
    return options


@app.command()
@_handle_errors
def convert(
    src: Annotated[Path, typer.Argument(help="Folder with one sub-folder per class.")],
    dst: Annotated[Path, typer.Argument(help="Pack folder to create.")],
    format: Annotated[
        str, typer.Option("--format", "-f", help="Backend; see `pack formats`.")
    ] = "tar",
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Backend option key=value (repeatable)."),
    ] = None,
    shard_size: Annotated[
        str | None,
        typer.Option(help="Cut data files at about this size, e.g. 512MB (default 1GiB)."),
    ] = None,
    samples_per_shard: Annotated[
        int | None, typer.Option(help="Cut data files after N samples.")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Processes writing shards; output is identical.")
    ] = 1,
    on_error: Annotated[
        str, typer.Option(help="fail: stop at the first bad file; skip: leave it out.")
    ] = "fail",
    validate: Annotated[
        str, typer.Option(help="none | quick (signature + end marker) | full (decode every image).")
    ] = "quick",
    force: Annotated[
        bool, typer.Option(help="Replace an existing pack at DST once the new one is done.")
    ] = False,
    size: Annotated[
        str | None,
        typer.Option(
            help="Resize every image to HxW (e.g. 224x224); default keeps bytes as they are."
        ),
    ] = None,
    resize: Annotated[
        str, typer.Option(help="With --size: stretch | center-crop | pad.")
    ] = "stretch",
    mode: Annotated[str | None, typer.Option(help="Convert to RGB or L (grayscale).")] = None,
    reencode: Annotated[
        str | None,
        typer.Option(
            help="Re-encode as jpeg:Q, png or webp:Q (needed by byte formats with --size)."
        ),
    ] = None,
    draft: Annotated[
        bool, typer.Option(help="Reduced-size JPEG decoding when shrinking a lot.")
    ] = True,
    max_pixels: Annotated[
        int, typer.Option(help="Refuse images with more pixels (decompression bombs).")
    ] = DEFAULT_MAX_PIXELS,
    extensions: Annotated[
        str | None,
        typer.Option(
            help="Which files are samples: default ImageFolder's image list; 'png,jpg' exactly "
            "these; '+gif,avif' / '-tif' change the default; '*' every file."
        ),
    ] = None,
    symlinks: Annotated[
        str,
        typer.Option(
            help="inside: follow links that stay in SRC; follow: all (each leaving SRC is named); "
            "skip: none."
        ),
    ] = "inside",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Read and check every file, report every bad or ignored one; write nothing.",
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue an interrupted convert to the same DST from its finished shards."
        ),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a JSON report on stdout.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress or warnings on stderr.")
    ] = False,
) -> None:
    """Pack an image folder tree into a pack folder.

    Bytes are stored unchanged unless --size/--mode/--reencode ask for a transform: with --format
    memmap or hdf5 and no --reencode the pack holds decoded pixels (N x H x W x C uint8).

    Example: pack convert ~/data/imagenet/train train.pack --format tar --shard-size 512MB
    """
    from packer.conversion import convert as run_convert
    from packer.transforms import Transform

    report = run_convert(
        src,
        dst,
        format,
        options=_parse_options(option or []),
        shard_size=shard_size,
        samples_per_shard=samples_per_shard,
        workers=workers,
        on_error=on_error,
        validate=validate,
        force=force,
        transform=Transform.build(
            size=size, resize=resize, mode=mode, reencode=reencode, draft=draft
        ),
        max_pixels=max_pixels,
        resume=resume,
        extensions=extensions,
        symlinks=symlinks,
        dry_run=dry_run,
        progress=CliProgress(quiet=quiet or json_out),
    )
    if not quiet:
        for s in report.skipped:
            err.print(f"{'bad' if dry_run else 'skipped'} {s.path}: {s.reason}")
        for w in report.warnings:
            err.print(f"warning: {w.path}: {w.message}")
        if report.ignored.count:
            err.print(report.ignored.summary())
        if report.resumed_shards:
            err.print(f"resumed: {report.resumed_shards} finished shard(s) reused")
    if json_out:
        _print_json(report.to_dict())
    if dry_run:
        if not json_out:
            out.print(
                f"dry run: {report.num_samples} samples ({report.num_classes} classes) would be "
                f"packed, {len(report.skipped)} bad file(s), {report.ignored.count} ignored, "
                f"{len(report.warnings)} warning(s); nothing was written"
            )
        if report.skipped and on_error == "fail":
            raise SourceError(
                f"{src}: {len(report.skipped)} bad file(s) (listed above); fix or remove them, "
                "or convert with --on-error skip"
            )
        return
    if json_out:
        return
    ratio = report.pack_bytes / report.source_bytes if report.source_bytes else 0.0
    out.print(
        f"packed {report.num_samples} samples ({report.num_classes} classes) into {report.path}: "
        f"{report.data_files} {report.backend} file(s), {_human_bytes(report.pack_bytes)} "
        f"({ratio:.2f}x source) in {report.seconds:.2f} s"
        + (f"; {len(report.skipped)} file(s) skipped" if report.skipped else "")
    )


@app.command()
@_handle_errors
def inspect(
    pack: Annotated[Path, typer.Argument(help="Pack folder.")],
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a JSON document on stdout.")
    ] = False,
) -> None:
    """Show what is in a pack: backend, options, totals, data files, samples per class.

    Example: pack inspect train.pack --json
    """
    from packer.api import inspect_pack

    info = inspect_pack(pack)
    if json_out:
        _print_json(info)
        return
    out.print(
        f"[bold]{info['path']}[/]  backend [bold]{info['backend']}[/] {info['options']}",
        markup=True,
    )
    ratio = f" ({info['size_vs_source']:.2f}x source)" if info["size_vs_source"] else ""
    out.print(
        f"{info['num_samples']} samples, {info['num_classes']} classes, {len(info['data_files'])} data "
        f"file(s), {_human_bytes(info['pack_bytes'])} on disk{ratio}, made by packer "
        f"{info['created_by'].get('version', '?')}"
    )
    if info["transform"]:
        t = info["transform"]
        stored = (
            f"pixels {info['sample_shape']}"
            if info["sample_shape"]
            else f"re-encoded {t['reencode']}"
        )
        out.print(f"transform: size {t['size']} ({t['resize']}), mode {t['mode']}, {stored}")
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
        files.add_row(d["name"], str(d["num_samples"]), _human_bytes(d["bytes"]))
    out.print(files)


@app.command()
@_handle_errors
def verify(
    pack: Annotated[Path, typer.Argument(help="Pack folder.")],
    deep: Annotated[bool, typer.Option(help="Also decode every image.")] = False,
    max_pixels: Annotated[
        int | None,
        typer.Option(help="Pixel limit for --deep (default: the limit the pack was made with)."),
    ] = None,
    workers: Annotated[int, typer.Option(help="Processes checking samples; same report.")] = 1,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a JSON report on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Check every byte of a pack; exit 0 if intact, 1 if any file or sample is damaged.

    Example: pack verify train.pack --deep --workers 4
    """
    from packer.api import verify_pack

    report = verify_pack(
        pack,
        deep=deep,
        max_pixels=max_pixels,
        workers=workers,
        progress=CliProgress(quiet=quiet or json_out),
    )
    if report.decoder_warnings and not (quiet or json_out):
        err.print(
            f"{len(report.decoder_warnings)} decoder warning(s) on samples that decoded "
            "(see --json: decoder_warnings)"
        )
    if json_out:
        _print_json(report.to_dict())
    else:
        for p in report.problems:
            out.print(f"{p.kind}: {p.where}: {p.message}")
        if report.problems_not_listed:
            out.print(f"... and {report.problems_not_listed} more problems")
        what = f"{report.samples_checked} samples, {report.files_checked} files" + (
            ", every image decoded" if deep and report.ok else ""
        )
        if report.ok:
            out.print(f"OK: {what} verified in {report.path}")
        else:
            total = len(report.problems) + report.problems_not_listed
            out.print(f"DAMAGED: {total} problem(s) in {report.path} ({what} checked)")
    if not report.ok:
        raise typer.Exit(EXIT_PROBLEMS_FOUND)


@app.command()
@_handle_errors
def extract(
    pack: Annotated[Path, typer.Argument(help="Pack folder (made without a transform).")],
    dest: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write the tree into.")],
    force: Annotated[bool, typer.Option(help="Overwrite files that already exist in OUT.")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a JSON report on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Write the original tree back: class folders, file names and bytes, each checked by CRC-32.

    Example: pack extract train.pack restored/ && diff -r train/ restored/
    """
    from packer.extract import extract as run_extract

    report = run_extract(pack, dest, force=force, progress=CliProgress(quiet=quiet or json_out))
    if json_out:
        _print_json(report.to_dict())
    else:
        out.print(
            f"extracted {report.files} files ({_human_bytes(report.bytes)}) into {report.out}"
        )


@app.command()
@_handle_errors
def formats(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a JSON document on stdout.")
    ] = False,
) -> None:
    """List the available formats (built-in and plugins), their options and origin.

    Example: pack formats --json
    """
    from packer.api import list_formats

    found = list_formats()
    if json_out:
        _print_json(found)
        return
    table = Table("format", "from", "options (default)", "description")
    for f in found:
        opts = ", ".join(f"{k}={v}" for k, v in f["options"].items()) or "-"
        table.add_row(f["name"], f["origin"], opts, f["error"] or f["summary"])
    out.print(table)


@app.command()
@_handle_errors
def bench(
    src: Annotated[
        Path, typer.Argument(help="Image tree to benchmark (the plain-folder baseline).")
    ],
    formats: Annotated[str, typer.Option(help="Comma-separated formats, or 'all'.")] = "all",
    pack: Annotated[
        list[Path] | None,
        typer.Option("--pack", help="Also measure this existing pack (repeatable)."),
    ] = None,
    samples: Annotated[
        int | None, typer.Option(help="Use a deterministic sample of N files.")
    ] = None,
    repeat: Annotated[int, typer.Option(help="Rounds; medians are reported.")] = 3,
    random: Annotated[int, typer.Option("--random", help="Reads per random pass.")] = 20_000,
    workers: Annotated[int, typer.Option(help="DataLoader workers for --decode.")] = 2,
    decode: Annotated[
        bool, typer.Option(help="Also time a torch DataLoader decoding to tensors.")
    ] = False,
    cold: Annotated[
        bool, typer.Option(help="Evict files from the page cache before each pass.")
    ] = False,
    sort: Annotated[
        str, typer.Option(help="Sort the table by this metric.")
    ] = "random_samples_per_s",
    json_file: Annotated[
        Path | None,
        typer.Option("--json", help="Write the JSON report to this file ('-' = stdout)."),
    ] = None,
    plot_file: Annotated[
        Path | None, typer.Option("--plot", help="Write a bar chart PNG (needs matplotlib).")
    ] = None,
    keep: Annotated[
        Path | None, typer.Option(help="Keep the converted packs in this folder.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Compare formats on your data and machine: convert, size, open, sequential/random reads.

    Every figure is a median over --repeat rounds and also a ratio to reading the plain folder.

    Example: pack bench ~/data/train --samples 20000 --formats tar,memmap,arrow --json bench.json --plot bench.png
    """
    from packer.bench import METRICS, plot, recommendation_line
    from packer.bench import bench as run_bench

    if sort not in METRICS:
        raise UsageError(f"--sort {sort!r} must be one of: {', '.join(METRICS)}")
    report = run_bench(
        src,
        formats=[f.strip() for f in formats.split(",") if f.strip()],
        packs=pack or [],
        samples=samples,
        repeat=repeat,
        random_reads=random,
        decode=decode,
        workers=workers,
        cold=cold,
        keep=keep,
        progress=CliProgress(quiet=quiet),
    )
    if json_file is not None:
        doc = json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"
        if str(json_file) == "-":
            sys.stdout.write(doc)
        else:
            json_file.write_text(doc)
    if plot_file is not None:
        plot(report, plot_file)
    if str(json_file) == "-":
        return
    higher_is_better = METRICS[sort][1]
    rows = sorted(
        report.results,
        key=lambda r: (
            r.median(sort) is None,
            -(r.median(sort) or 0) if higher_is_better else (r.median(sort) or 0),
        ),
    )
    table = Table(
        title=f"{report.samples} samples, {_human_bytes(report.source_bytes)}, median of {report.rounds}"
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
            text = _compact(value)
            if (
                ratio is not None
                and r.name != "folder"
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


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"packer {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Turn folder trees of many small images into a few large packed files, and read them fast."""


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (kill, a job scheduler) cleans up exactly like Ctrl-C does."""
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    app()
