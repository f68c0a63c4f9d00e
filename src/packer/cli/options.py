"""Options several ``pack`` commands share, declared once: as ``Annotated`` types, and the
options that shape a pack's bytes (convert, plan) as one parameter set, :func:`with_pack_options`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.models import ArgumentInfo

from packer.cli.app import parse_options

if TYPE_CHECKING:
    from packer.api import ConvertOptions

R = TypeVar("R")

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


def _pack_options(
    format: FormatOpt = DEFAULT_FORMAT,
    option: BackendOpts = None,
    shard_size: ShardSizeOpt = None,
    samples_per_shard: SamplesPerShardOpt = None,
    cut: CutOpt = "content",
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
    from_list: FromListOpt = None,
    classes_file: ClassesFileOpt = None,
) -> ConvertOptions:
    """The options that shape a pack's bytes, as the one value the library takes."""
    from packer import api  # here: `pack --help` imports no conversion code

    transform = api.Transform.build(
        size=size, resize=resize, mode=mode, reencode=reencode, draft=draft
    )
    return api.ConvertOptions(
        format=format, options=parse_options(option or []), shard_size=shard_size,
        samples_per_shard=samples_per_shard, on_error=on_error, validate=validate,
        extensions=extensions, symlinks=symlinks, transform=transform, max_pixels=max_pixels,
        from_list=from_list, classes_file=classes_file, cut=cut,
    )  # fmt: skip


def with_pack_options(command: Callable[..., R]) -> Callable[..., R]:
    """Give ``command`` the options of :func:`_pack_options` (after its arguments, in ``--help``
    too); it receives them as one :class:`~packer.api.ConvertOptions`, its ``chosen`` parameter."""
    own = inspect.signature(command)  # not evaluated: ``chosen``'s type is for mypy only
    shared = [
        _evaluated(p, _pack_options) for p in inspect.signature(_pack_options).parameters.values()
    ]
    mine = [_evaluated(p, command) for p in own.parameters.values() if p.name != "chosen"]
    arguments = [p for p in mine if _is_argument(p)]
    merged = arguments + shared + [p for p in mine if not _is_argument(p)]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> R:
        shaping = {p.name: kwargs.pop(p.name) for p in shared}
        return command(**kwargs, chosen=_pack_options(**shaping))

    wrapper.__signature__ = own.replace(parameters=merged, return_annotation=None)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in merged}
    return wrapper


def _evaluated(parameter: inspect.Parameter, command: Callable[..., Any]) -> inspect.Parameter:
    if not isinstance(parameter.annotation, str):
        return parameter
    hint = eval(parameter.annotation, command.__globals__)  # the module's own annotation text
    return parameter.replace(annotation=hint)


def _is_argument(parameter: inspect.Parameter) -> bool:
    metadata = getattr(parameter.annotation, "__metadata__", ())
    return any(isinstance(m, ArgumentInfo) for m in metadata)
