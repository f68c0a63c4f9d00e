"""The ``pack`` command: parse arguments, call :mod:`packer.api`, render with rich.

stdout carries results only (``--json`` prints exactly one JSON document); progress, warnings and
errors go to stderr. A :class:`~packer.errors.PackerError` becomes one line and its exit code.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from packer._version import __version__
from packer.cli_render import (
    CliProgress,
    err,
    human_bytes,
    out,
    print_json,
    render_bench,
    render_convert,
    render_formats,
    render_inspect,
)
from packer.errors import (
    EXIT_INTERRUPTED,
    EXIT_PROBLEMS_FOUND,
    PackerError,
    SourceError,
    UsageError,
)

app = typer.Typer(
    name="pack",
    help="Turn folder trees of many small images into a few large packed files, and read them fast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
P = ParamSpec("P")
R = TypeVar("R")

#: Options several commands share, declared once.
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
QuietFlag = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress or warnings on stderr.")
]


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
        int | None,
        typer.Option(
            help="Refuse images with more pixels (decompression bombs); default 89,478,485."
        ),
    ] = None,
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
    json_out: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Pack an image folder tree into a pack folder.

    Bytes are stored unchanged unless --size/--mode/--reencode ask for a transform: with --format
    memmap or hdf5 and no --reencode the pack holds decoded pixels (N x H x W x C uint8).

    Example: pack convert ~/data/imagenet/train train.pack --format tar --shard-size 512MB
    """
    from packer.api import Transform
    from packer.api import convert as run_convert

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
    render_convert(report, quiet=quiet, json_out=json_out)
    if dry_run and report.skipped and on_error == "fail":
        raise SourceError(
            f"{src}: {len(report.skipped)} bad file(s) (listed above); fix or remove them, "
            "or convert with --on-error skip"
        )


@app.command()
@_handle_errors
def inspect(
    pack: Annotated[Path, typer.Argument(help="Pack folder.")],
    json_out: JsonFlag = False,
) -> None:
    """Show what is in a pack: backend, options, totals, data files, samples per class.

    Example: pack inspect train.pack --json
    """
    from packer.api import inspect_pack

    info = inspect_pack(pack)
    if json_out:
        print_json(info)
        return
    render_inspect(info)


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
    json_out: JsonFlag = False,
    quiet: QuietFlag = False,
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
        print_json(report.to_dict())
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
    json_out: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Write the original tree back: class folders, file names and bytes, each checked by CRC-32.

    Example: pack extract train.pack restored/ && diff -r train/ restored/
    """
    from packer.api import extract as run_extract

    report = run_extract(pack, dest, force=force, progress=CliProgress(quiet=quiet or json_out))
    if json_out:
        print_json(report.to_dict())
    else:
        out.print(f"extracted {report.files} files ({human_bytes(report.bytes)}) into {report.out}")


@app.command()
@_handle_errors
def formats(
    json_out: JsonFlag = False,
) -> None:
    """List the available formats (built-in and plugins), their options and origin.

    Example: pack formats --json
    """
    from packer.api import list_formats

    found = list_formats()
    if json_out:
        print_json(found)
        return
    render_formats(found)


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
    quiet: QuietFlag = False,
) -> None:
    """Compare formats on your data and machine: convert, size, open, sequential/random reads.

    Every figure is a median over --repeat rounds and also a ratio to reading the plain folder.

    Example: pack bench ~/data/train --samples 20000 --formats tar,memmap,arrow --json bench.json --plot bench.png
    """
    from packer.api import METRICS
    from packer.api import bench as run_bench

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
        from packer.cli_plot import plot

        plot(report, plot_file)
    if str(json_file) == "-":
        return
    render_bench(report, sort)


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
