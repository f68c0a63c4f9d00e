"""The ``pack`` command: parse arguments, call :mod:`packer.api`, render with rich.

stdout carries results only (``--json`` prints exactly one JSON document); progress, warnings and
errors go to stderr. A :class:`~packer.errors.PackerError` becomes one line and its exit code.
This module holds the commands that write packs (convert, plan, merge); :mod:`packer.cli.read`
those that read them; :mod:`packer.cli.app` what they share.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from packer._version import __version__
from packer.cli import read as _read  # noqa: F401 - registers inspect, verify, extract, formats, bench
from packer.cli.app import app, command
from packer.cli.options import (
    ChecksumFlag,
    ExecutorOpt,
    JsonFlag,
    QuietFlag,
    SchedulerOpt,
    WorkersOpt,
    with_pack_options,
)
from packer.cli.render import CliProgress, out, print_json, render_convert
from packer.errors import EXIT_PROBLEMS_FOUND, SourceError, UsageError

if TYPE_CHECKING:
    from packer.api import ConvertOptions

__all__ = ["app", "main"]


@command()
@with_pack_options
def convert(
    src: Annotated[
        Path, typer.Argument(help="Folder with one sub-folder per class (with --plan: OUT).")
    ],
    dst: Annotated[
        str | None, typer.Argument(help="Pack folder to create, or a URL (s3://bucket/x.pack).")
    ] = None,
    *,
    chosen: ConvertOptions,
    workers: WorkersOpt = None,
    executor: ExecutorOpt = "local",
    scheduler: SchedulerOpt = None,
    force: Annotated[
        bool, typer.Option(help="Replace an existing pack at DST once the new one is done.")
    ] = False,
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
    update: Annotated[
        bool,
        typer.Option(
            "--update",
            help="Bring DST up to date with SRC: write nothing if nothing changed, else only the "
            "shards that changed (same bytes as a fresh convert).",
        ),
    ] = False,
    checksum: ChecksumFlag = False,
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

    With --from-list LIST.csv, SRC is the folder the list's paths are relative to, and the
    samples are the listed files with their labels, in row order.

    Example: pack convert ~/data/imagenet/train train.pack --format tar --shard-size 512MB

    Example: pack convert --from-list val_labels.csv ~/data/imagenet/val val.pack

    Example: pack convert data/train train.pack --update   (a CI step: cheap when little changed)
    """
    from packer import api

    with _executor(executor, scheduler, workers) as pool:
        if plan is not None or part is not None:
            target = None if dst is None else Path(dst)
            _convert_part(plan, part, src, target, pool, workers, resume, force, json_out, quiet)
            return
        if dst is None:
            raise UsageError("pack convert needs SRC and DST (or --plan PLAN --part I/N OUT)")
        run = api.RunSettings(
            workers=workers, executor=pool, force=force, resume=resume, dry_run=dry_run,
            update=update, checksum=checksum, progress=CliProgress(quiet=quiet or json_out),
        )  # fmt: skip
        report = api.convert_with(src, dst, chosen, run)
    render_convert(report, quiet=quiet, json_out=json_out)
    if dry_run and report.skipped and chosen.on_error == "fail":
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
    from packer.api import dask_executor

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


@command("plan")
@with_pack_options
def plan_command(
    src: Annotated[Path, typer.Argument(help="Folder with one sub-folder per class.")],
    plan: Annotated[Path, typer.Argument(help="Plan folder to create.")],
    *,
    chosen: ConvertOptions,
    force: Annotated[bool, typer.Option(help="Replace an existing plan.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Scan and stat SRC once and save every decision of a convert, for parts written elsewhere.

    Then run `pack convert --plan PLAN --part I/N OUT_I` for I in 0..N-1 (SLURM array tasks,
    CI jobs, machines sharing the filesystem) and `pack merge PLAN OUT_0 ... OUT_N-1 DST`.

    Example: pack plan ~/data/train train.plan --format tar --shard-size 512MB
    """
    from packer import api

    doc = api.save_plan_with(src, plan, chosen, force=force)
    if json_out:
        print_json(doc)
    else:
        out.print(
            f"planned {doc['samples']} samples ({doc['classes']} classes) in {doc['shards']} "
            f"shard(s) into {plan}; digest {doc['digest'][:12]}"
        )


@command()
def merge(
    plan: Annotated[Path, typer.Argument(help="The plan the parts were written from.")],
    folders: Annotated[
        list[str],
        typer.Argument(metavar="PART... DST", help="Every part folder, then DST (or its URL)."),
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


@command()
def status(
    src: Annotated[Path, typer.Argument(help="The folder tree the pack is made from.")],
    dst: Annotated[str, typer.Argument(help="The pack folder (it may not exist yet).")],
    checksum: ChecksumFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Is DST up to date with SRC? Exit 0 if so, 1 if stale (then `pack convert --update`).

    SRC is planned with the options DST was made with. The --json document counts added,
    changed and removed files, added classes and shards to rewrite, and gives a fingerprint of
    SRC for a CI cache key (with --checksum it does not depend on mtimes).

    Example: pack status data/train train.pack --checksum --json
    """
    from packer import api

    changes = api.status(src, dst, checksum=checksum)
    if json_out:
        print_json(changes.to_dict())
    else:
        out.print(f"{dst}: {changes.summary()}")
    if not changes.up_to_date:
        raise typer.Exit(EXIT_PROBLEMS_FOUND)


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
    """The ``pack`` program: its process is its own, so each command may configure it."""
    from packer.cli import app as cli_app

    cli_app.OWN_PROCESS = True
    signal.signal(signal.SIGTERM, _terminate)
    app()
