"""The ``pack`` command: parse arguments, call :mod:`packer.api`, render with rich.

stdout carries results only (``--json`` prints exactly one JSON document); progress, warnings and
errors go to stderr. A :class:`~packer.errors.PackerError` becomes one line and its exit code.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from packer._version import __version__
from packer.cli_options import (
    DEFAULT_FORMAT,
    BackendOpts,
    DraftOpt,
    ExecutorOpt,
    ExtensionsOpt,
    FormatOpt,
    JsonFlag,
    MaxPixelsOpt,
    ModeOpt,
    OnErrorOpt,
    QuietFlag,
    ReencodeOpt,
    ResizeOpt,
    SamplesPerShardOpt,
    SchedulerOpt,
    ShardSizeOpt,
    SizeOpt,
    SymlinksOpt,
    ValidateOpt,
    WorkersOpt,
)
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
    src: Annotated[
        Path, typer.Argument(help="Folder with one sub-folder per class (with --plan: OUT).")
    ],
    dst: Annotated[Path | None, typer.Argument(help="Pack folder to create.")] = None,
    format: FormatOpt = DEFAULT_FORMAT,
    option: BackendOpts = None,
    shard_size: ShardSizeOpt = None,
    samples_per_shard: SamplesPerShardOpt = None,
    workers: WorkersOpt = None,
    executor: ExecutorOpt = "local",
    scheduler: SchedulerOpt = None,
    on_error: OnErrorOpt = "fail",
    validate: ValidateOpt = "quick",
    force: Annotated[
        bool, typer.Option(help="Replace an existing pack at DST once the new one is done.")
    ] = False,
    size: SizeOpt = None,
    resize: ResizeOpt = "stretch",
    mode: ModeOpt = None,
    reencode: ReencodeOpt = None,
    draft: DraftOpt = True,
    max_pixels: MaxPixelsOpt = None,
    extensions: ExtensionsOpt = None,
    symlinks: SymlinksOpt = "inside",
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
    plan: Annotated[
        Path | None,
        typer.Option(help="Write one part of this plan (`pack plan`) instead; needs --part."),
    ] = None,
    part: Annotated[
        str | None,
        typer.Option(help="With --plan: I/N, e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT."),
    ] = None,
    json_out: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Pack an image folder tree into a pack folder (or write one part of a plan).

    Bytes are stored unchanged unless --size/--mode/--reencode ask for a transform: with a format
    that stores pixels (memmap, hdf5) and no --reencode the pack holds N x H x W x C uint8 pixels.

    Example: pack convert ~/data/imagenet/train train.pack --format tar --shard-size 512MB
    """
    from packer import api

    with _executor(executor, scheduler, workers) as pool:
        if plan is not None or part is not None:
            _convert_part(plan, part, src, dst, pool, workers, resume, force, json_out, quiet)
            return
        if dst is None:
            raise UsageError("pack convert needs SRC and DST (or --plan PLAN --part I/N OUT)")
        report = api.convert(
            src,
            dst,
            format,
            options=_parse_options(option or []),
            shard_size=shard_size,
            samples_per_shard=samples_per_shard,
            workers=workers,
            executor=pool,
            on_error=on_error,
            validate=validate,
            force=force,
            transform=api.Transform.build(
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


@contextlib.contextmanager
def _executor(kind: str, scheduler: str | None, workers: int | None) -> Iterator[Executor | None]:
    """None for this machine (inline or a local pool of --workers), else a Dask executor."""
    if kind not in ("local", "dask"):
        raise UsageError(f"--executor {kind!r} must be local or dask")
    if kind == "local" and scheduler is None:
        yield None
        return
    from packer.cluster import dask_executor

    with dask_executor(scheduler, workers) as pool:
        yield pool


def _convert_part(
    plan: Path | None,
    part: str | None,
    out_dir: Path,
    extra: Path | None,
    pool: Executor | None,
    workers: int | None,
    resume: bool,
    force: bool,
    json_out: bool,
    quiet: bool,
) -> None:
    from packer import api

    if plan is None or part is None or extra is not None:
        raise UsageError("write a part as: pack convert --plan PLAN --part I/N OUT")
    doc = api.convert_part(
        plan,
        part,
        out_dir,
        workers=workers,
        executor=pool,
        resume=resume,
        force=force,
        progress=CliProgress(quiet=quiet or json_out),
    )
    if json_out:
        print_json(doc)
    else:
        first, stop = doc["shards"]
        out.print(
            f"part {doc['part']}/{doc['parts']}: shards {first}..{stop - 1} written to {out_dir}"
        )


@app.command("plan")
@_handle_errors
def plan_command(
    src: Annotated[Path, typer.Argument(help="Folder with one sub-folder per class.")],
    plan: Annotated[Path, typer.Argument(help="Plan folder to create.")],
    format: FormatOpt = DEFAULT_FORMAT,
    option: BackendOpts = None,
    shard_size: ShardSizeOpt = None,
    samples_per_shard: SamplesPerShardOpt = None,
    on_error: OnErrorOpt = "fail",
    validate: ValidateOpt = "quick",
    size: SizeOpt = None,
    resize: ResizeOpt = "stretch",
    mode: ModeOpt = None,
    reencode: ReencodeOpt = None,
    draft: DraftOpt = True,
    max_pixels: MaxPixelsOpt = None,
    extensions: ExtensionsOpt = None,
    symlinks: SymlinksOpt = "inside",
    force: Annotated[bool, typer.Option(help="Replace an existing plan.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Scan and stat SRC once and save every decision of a convert, for parts written elsewhere.

    Then run `pack convert --plan PLAN --part I/N OUT_I` for I in 0..N-1 (SLURM array tasks,
    CI jobs, machines sharing the filesystem) and `pack merge PLAN OUT_0 ... OUT_N-1 DST`.

    Example: pack plan ~/data/train train.plan --format tar --shard-size 512MB
    """
    from packer import api

    doc = api.save_plan(
        src,
        plan,
        format,
        force=force,
        options=_parse_options(option or []),
        shard_size=shard_size,
        samples_per_shard=samples_per_shard,
        on_error=on_error,
        validate=validate,
        transform=api.Transform.build(
            size=size, resize=resize, mode=mode, reencode=reencode, draft=draft
        ),
        max_pixels=max_pixels,
        extensions=extensions,
        symlinks=symlinks,
    )
    if json_out:
        print_json(doc)
    else:
        out.print(
            f"planned {doc['samples']} samples ({doc['classes']} classes) in {doc['shards']} "
            f"shard(s) into {plan}; digest {doc['digest'][:12]}"
        )


@app.command()
@_handle_errors
def merge(
    plan: Annotated[Path, typer.Argument(help="The plan the parts were written from.")],
    folders: Annotated[
        list[Path], typer.Argument(metavar="PART... DST", help="Every part folder, then DST.")
    ],
    force: Annotated[
        bool, typer.Option(help="Replace an existing pack at DST once the new one is done.")
    ] = False,
    json_out: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Check every part and assemble them into one pack, identical to a single convert.

    Example: pack merge train.plan part-0 part-1 part-2 part-3 train.pack
    """
    from packer import api

    if len(folders) < 2:
        raise UsageError("pack merge needs PLAN, at least one PART and DST")
    report = api.merge(
        plan,
        list(folders[:-1]),
        folders[-1],
        force=force,
        progress=CliProgress(quiet=quiet or json_out),
    )
    render_convert(report, quiet=True, json_out=json_out)


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
