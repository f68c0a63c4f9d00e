"""Options several ``pack`` commands share (convert, plan), declared once as ``Annotated`` types."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: registry.DEFAULT_FORMAT, repeated so that `pack --help` imports no backend code (a test
#: checks the two agree).
DEFAULT_FORMAT = "tar"

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
QuietFlag = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress or warnings on stderr.")
]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Backend; see `pack formats`.")]
BackendOpts = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", help="Backend option key=value (repeatable)."),
]
ShardSizeOpt = Annotated[
    str | None,
    typer.Option(
        help="Data files of at most this many source bytes, e.g. 512MB (default 1GiB, and a "
        "mid-size tree in about 16 or more shards)."
    ),
]
SamplesPerShardOpt = Annotated[int | None, typer.Option(help="Data files of at most N samples.")]
CutOpt = Annotated[
    str,
    typer.Option(
        help="content: shards end at content-defined points within the limits (an added file "
        "moves about one boundary); fixed: fill every shard to the limit."
    ),
]
ChecksumFlag = Annotated[
    bool,
    typer.Option(
        "--checksum",
        help="Compare file contents (size + CRC-32), not mtimes (fresh checkouts, cp without -p).",
    ),
]
OnErrorOpt = Annotated[
    str, typer.Option(help="fail: stop at the first bad file; skip: leave it out.")
]
ValidateOpt = Annotated[
    str, typer.Option(help="none | quick (headers and trailers) | full (decode every image).")
]
SizeOpt = Annotated[
    str | None,
    typer.Option(help="Resize every image to HxW (e.g. 224x224); default keeps bytes as they are."),
]
ResizeOpt = Annotated[str, typer.Option(help="With --size: stretch | center-crop | pad.")]
ModeOpt = Annotated[str | None, typer.Option(help="Convert to RGB or L (grayscale).")]
ReencodeOpt = Annotated[
    str | None,
    typer.Option(help="Re-encode as jpeg:Q, png or webp:Q (needed by byte formats with --size)."),
]
DraftOpt = Annotated[bool, typer.Option(help="Reduced-size JPEG decoding when shrinking a lot.")]
MaxPixelsOpt = Annotated[
    int | None,
    typer.Option(help="Refuse images with more pixels (decompression bombs); default 89,478,485."),
]
ExtensionsOpt = Annotated[
    str | None,
    typer.Option(
        help="Which files are samples: default ImageFolder's image list; 'png,jpg' exactly "
        "these; '+gif,avif' / '-tif' change the default; '*' every file."
    ),
]
SymlinksOpt = Annotated[
    str,
    typer.Option(
        help="inside: follow links that stay in SRC; follow: all (each leaving SRC is named); "
        "skip: none."
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        help="Processes writing shards (a LocalCluster's size with --executor dask). Default: "
        "from the CPUs this process may use (SLURM allocation, affinity): one per CPU when "
        "images are decoded, one per two CPUs for a byte copy. Same output for any N."
    ),
]
ExecutorOpt = Annotated[
    str,
    typer.Option(
        help="Where shards are written: local (this machine) or dask (a cluster; with "
        "--scheduler, or a LocalCluster of --workers processes)."
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (implies --executor dask)."
    ),
]
FromListOpt = Annotated[
    Path | None,
    typer.Option(
        help="Pack the files a CSV/TSV of path,label rows names (paths relative to SRC) in row "
        "order, instead of SRC's class folders."
    ),
]
ClassesFileOpt = Annotated[
    Path | None,
    typer.Option(help="With --from-list: class names, one per line (line i is label i)."),
]
