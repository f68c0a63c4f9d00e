"""The ``pack`` commands that read packs: inspect, verify, extract, formats, bench."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from packer.cli.app import command
from packer.cli.options import JsonFlag, QuietFlag
from packer.cli.render import (
    CliProgress,
    err,
    human_bytes,
    out,
    print_json,
    render_bench,
    render_formats,
    render_inspect,
    render_stats,
    throughput,
)
from packer.errors import EXIT_PROBLEMS_FOUND, UsageError, require_extra


@command()
def inspect(
    pack: Annotated[str, typer.Argument(help="Pack folder, or its URL (s3://bucket/train.pack).")],
    stats: Annotated[
        bool,
        typer.Option(
            help="Also read every image's header: formats, modes, sizes, bytes per class."
        ),
    ] = False,
    preview: Annotated[
        Path | None,
        typer.Option(help="Write a contact sheet PNG here: a row of thumbnails per class."),
    ] = None,
    per_class: Annotated[int, typer.Option(help="Thumbnails per class in --preview.")] = 8,
    classes: Annotated[
        str | None, typer.Option(help="Only these classes in --preview, comma-separated.")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Show what is in a pack: format, options, totals, data files, samples per class.

    Example: pack inspect train.pack --json

    Example: pack inspect train.pack --stats --preview grid.png --per-class 6 --classes cat,dog
    """
    from packer.api import contact_sheet, inspect_pack, pack_stats

    info: dict[str, Any] = dict(inspect_pack(pack))  # plus --stats and --preview
    if stats:
        info["stats"] = pack_stats(pack)
    if preview is not None:
        info["preview"] = {
            "path": str(preview),
            **contact_sheet(pack, preview, per_class=per_class, classes=_names(classes)),
        }
    if json_out:
        print_json(info)
        return
    render_inspect(info)
    if stats:
        render_stats(info["stats"])
    if preview is not None:
        p = info["preview"]
        out.print(f"preview: {p['rows']} class row(s) of up to {p['columns']} in {preview} "
                  f"({p['width']}x{p['height']})")  # fmt: skip


def _names(text: str | None) -> list[str] | None:
    """``a,b`` -> ['a', 'b']; None stays None (every class)."""
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


@command()
def verify(
    pack: Annotated[str, typer.Argument(help="Pack folder.")],
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
        took = throughput(report.seconds, report.samples_checked, "samples")
        if report.ok:
            out.print(f"OK: {what} verified in {report.url or report.path} in {took}")
        else:
            total = len(report.problems) + report.problems_not_listed
            out.print(
                f"DAMAGED: {total} problem(s) in {report.url or report.path} ({what} checked)"
            )
    if not report.ok:
        raise typer.Exit(EXIT_PROBLEMS_FOUND)


@command()
def extract(
    pack: Annotated[str, typer.Argument(help="Pack folder or URL (made without a transform).")],
    dest: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write the tree into.")],
    force: Annotated[bool, typer.Option(help="Overwrite files that already exist in OUT.")] = False,
    classes: Annotated[
        str | None, typer.Option(help="Only these classes, comma-separated: --classes cat,dog.")
    ] = None,
    keys_from: Annotated[
        Path | None,
        typer.Option(
            help="Only the samples whose keys are listed in this file, one per line (- = stdin)."
        ),
    ] = None,
    json_out: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Write the original tree back: class folders, file names and bytes, each checked by CRC-32.

    Example: pack extract train.pack restored/ && diff -r train/ restored/

    Example: pack extract train.pack sample/ --classes cat,dog --keys-from hard-cases.txt
    """
    from packer.api import extract as run_extract
    from packer.api import read_key_list

    report = run_extract(
        pack,
        dest,
        force=force,
        classes=_names(classes),
        keys=None if keys_from is None else read_key_list(keys_from),
        progress=CliProgress(quiet=quiet or json_out),
    )
    if json_out:
        print_json(report.to_dict())
    else:
        took = throughput(report.seconds, report.files, "files", report.bytes)
        out.print(
            f"extracted {report.files} files ({human_bytes(report.bytes)}) into {report.out} "
            f"in {took}"
        )


@command()
def stage(
    src: Annotated[
        str, typer.Argument(help="The pack: a URL (s3://bucket/train.pack) or a folder.")
    ],
    local: Annotated[Path, typer.Argument(help="Where to put it (fast local disk).")],
    workers: Annotated[int, typer.Option(help="Files downloaded at once.")] = 4,
    force: Annotated[
        bool, typer.Option(help="Replace a different pack at LOCAL (only once the copy is whole).")
    ] = False,
    json_out: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Copy a pack to local disk, every file checked against the manifest's sha256.

    Resumable (run it again after a kill: it continues each file), one copy per node (other
    processes wait for it, then use it), a no-op when LOCAL already holds the pack. Credentials
    and endpoints come from the environment (AWS_ENDPOINT_URL, AWS_PROFILE, ...).

    Example: pack stage s3://datasets/train.pack /scratch/$USER/train.pack
    """
    from packer.api import stage as run_stage

    report = run_stage(
        src, local, workers=workers, force=force, progress=CliProgress(quiet=quiet or json_out)
    )
    if json_out:
        print_json(report.to_dict())
    elif report.already:
        out.print(f"{report.path}: already holds {src} (verified when staged); nothing copied")
    else:
        took = throughput(report.seconds, report.files, "files", report.bytes_copied)
        out.print(
            f"staged {src} into {report.path}: {report.files} files, "
            f"{human_bytes(report.bytes_copied)} copied of {human_bytes(report.bytes_total)}, "
            f"every file checked, in {took}"
        )


@command()
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


@command()
def bench(
    src: Annotated[
        Path, typer.Argument(help="Image tree to benchmark (the plain-folder baseline).")
    ],
    formats: Annotated[str, typer.Option(help="Comma-separated formats, or 'all'.")] = "all",
    pack: Annotated[
        list[str] | None,
        typer.Option("--pack", help="Also measure this existing pack or URL (repeatable)."),
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
    if plot_file is not None:  # before minutes of measuring, not after
        require_extra("matplotlib", "plot", "--plot")
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
        from packer.cli.plot import plot

        plot(report, plot_file)
    if str(json_file) == "-":
        return
    render_bench(report, sort)
