"""The plan of a convert: everything decided before a byte is written, as a value.

A :class:`Plan` is a pure function of SRC and the options: the ordered samples with their labels
and keys, what was left out, the extension table, the backend and its options and, once the files
are stat'ed, the shard boundaries. ``pack convert`` makes one in memory; ``pack plan`` saves it
(JSON + arrays) so that SLURM array tasks or CI jobs can each write a block of its shards
(``pack convert --plan PLAN --part I/N``) and ``pack merge`` can assemble them into the very pack a
single convert gives. The digest names a plan exactly: parts of another plan are refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from packer._util.columns import Array, Column, blocks_of, hash_array, store, store_many
from packer._util.pathtable import extension_ids
from packer._version import __version__
from packer.backends.registry import get_backend_class, make_backend, pixel_formats
from packer.conversion.cuts import (
    DEFAULT_SHARD_SIZE,
    CutRule,
    cut_points,
    default_samples_per_shard,
    file_stats,
    plan_shards,
)
from packer.conversion.job import ShardJob
from packer.conversion.options import ConvertOptions
from packer.errors import SourceError, UsageError
from packer.images.checks import DEFAULT_MAX_PIXELS, validated_extensions
from packer.source.omissions import Skipped
from packer.source.scanner import Scan, parse_extensions, scan_tree

if TYPE_CHECKING:
    from packer.images.transforms import Transform

PLAN_FORMAT = "packer-plan-v1"
#: the per-sample arrays a saved plan holds beside ``paths`` (see plan_store)
ARRAYS = ("labels", "ext_ids", "sizes", "bounds", "path_offsets")


@dataclass
class Plan:
    """What to write and how. ``bounds`` is None until the shard boundaries are fixed (a single
    process cuts shards while reading instead, with the same rule)."""

    scan: Scan
    ext_names: list[str]
    ext_ids: Array
    backend_name: str
    backend_options: dict[str, Any]
    pixel_shape: tuple[int, int, int] | None
    transform: dict[str, Any] | None
    validate: str
    on_error: str
    max_pixels: int
    shard_size: int | None
    samples_per_shard: int | None
    extensions: frozenset[str] | None
    symlinks: str
    sizes: Array | None = None
    bounds: list[tuple[int, int]] | None = None
    #: the list file's name when samples came from ``--from-list`` (None: a folder tree)
    from_list: str | None = None
    #: ``content`` (boundaries survive insertions) or ``fixed`` (every shard filled to the limit)
    cut: str = "content"
    #: each file's mtime_ns from the stat pass (with ``sizes``), for ``--update``'s state
    mtimes: Array | None = None
    #: where the per-sample columns live on disk (None: in memory); see :mod:`packer._util.columns`
    workdir: Path | None = None

    @property
    def created_by(self) -> dict[str, Any]:
        """The manifest's ``created_by``: the tool and every option that shaped the pack."""
        return {
            "tool": "packer",
            "version": __version__,
            "validate": self.validate,
            "shard_size": self.shard_size,
            "samples_per_shard": self.samples_per_shard,
            "max_pixels": self.max_pixels,
            "extensions": "*" if self.extensions is None else sorted(self.extensions),
            "symlinks": self.symlinks,
            "cut": self.cut,
            **({"from_list": self.from_list} if self.from_list is not None else {}),
        }

    @property
    def shard_bounds(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of every shard: set by :meth:`with_bounds` (a saved plan has them)."""
        if self.bounds is None:
            raise RuntimeError("the plan has no shard boundaries yet: call with_bounds() first")
        return self.bounds

    @property
    def file_sizes(self) -> Array:
        """Each source file's size from the stat pass (:meth:`with_bounds`)."""
        if self.sizes is None:
            raise RuntimeError("the plan has no file sizes yet: call with_bounds() first")
        return self.sizes

    @property
    def file_mtimes(self) -> Array:
        """Each source file's mtime_ns from the stat pass (:meth:`with_bounds`; not in a saved plan)."""
        if self.mtimes is None:
            raise RuntimeError("the plan has no file mtimes: it was not stat'ed in this process")
        return self.mtimes

    @property
    def decodes(self) -> bool:
        """Whether writing decodes every image (CPU-bound: worth a worker per CPU)."""
        return self.transform is not None or self.validate == "full"

    def template(self, out_dir: Path | str, *, dry_run: bool = False) -> ShardJob:
        """The job every shard's job is cut from (``shard``, ``start``, ``stop`` still to set)."""
        return ShardJob(
            shard=0,
            root=str(self.scan.root),
            paths=self.scan.paths,
            labels=self.scan.labels,
            extension_ids=self.ext_ids,
            out_dir=str(out_dir),
            backend_name=self.backend_name,
            backend_options=self.backend_options,
            validate=self.validate,
            on_error=self.on_error,
            transform=self.transform,
            pixel_shape=self.pixel_shape,
            max_pixels=self.max_pixels,
            cut=self.rule,
            cut_points=self.cut_points() if self.bounds is None else None,  # planned: not needed
            full_keys=self.scan.full_keys,
            image_extensions=validated_extensions(self.extensions),
            classes=tuple(self.scan.classes),
            dry_run=dry_run,
        )

    @property
    def rule(self) -> CutRule:
        return CutRule(self.shard_size, self.samples_per_shard, content=self.cut == "content")

    def cut_points(self) -> Array | None:
        """Each sample's content-defined cut point (None for fixed cuts), computed a block of
        paths at a time (kept in the work folder, if any, and computed once there)."""
        if self.cut != "content":
            return None
        path = None if self.workdir is None else self.workdir / "cut_points.npy"
        if path is not None and path.is_file():
            return Column(path)
        points = (cut_points(block.block_hashes()) for block in self.scan.paths.blocks())
        return store(points, "<f8", path)

    def with_bounds(self) -> Plan:
        """This plan with its shard boundaries, from one stat of every file."""
        if self.bounds is not None:
            return self
        work = self.workdir
        files = None if work is None else [work / "sizes.npy", work / "mtimes.npy"]
        stats = file_stats(self.scan.root, self.scan.paths)
        sizes, times = store_many(stats, ("<i8", "<i8"), files)
        bounds = plan_shards(sizes, len(sizes), self.rule, self.cut_points())
        return dataclasses.replace(self, sizes=sizes, mtimes=times, bounds=bounds)

    def jobs(self, template: ShardJob, shards: Iterable[int] | None = None) -> list[ShardJob]:
        """One job per planned shard (all, or those in ``shards``), cut from ``template``."""
        bounds = self.shard_bounds
        wanted = range(len(bounds)) if shards is None else shards
        return [
            dataclasses.replace(template, shard=k, start=bounds[k][0], stop=bounds[k][1], cut=None)
            for k in wanted
        ]

    # -- on disk --------------------------------------------------------------------------------

    def _document(self) -> dict[str, Any]:
        scan = self.scan
        return {
            "format": PLAN_FORMAT,
            "root": str(Path(scan.root).absolute()),
            "classes": scan.classes,
            "full_keys": sorted(scan.full_keys),
            "skipped": [s.to_dict() for s in scan.skipped],
            "ignored": [s.to_dict() for s in scan.ignored.listed],
            "ignored_by_reason": dict(sorted(scan.ignored.by_reason.items())),
            "findings": [f.to_dict() for f in scan.findings],
            "ext_names": self.ext_names,
            "backend": {"name": self.backend_name, "options": self.backend_options},
            "pixel_shape": list(self.pixel_shape) if self.pixel_shape else None,
            "transform": self.transform,
            "created_by": self.created_by,
            "on_error": self.on_error,
            "num_samples": len(scan.paths),
            "num_shards": len(self.bounds or []),
        }

    def _columns(self) -> dict[str, Array]:
        """The plan's arrays as saved (``paths``: the paths' bytes back to back)."""
        raw, plain = self.scan.paths.encoded_columns()
        path_arrays: dict[str, Array] = {"paths": raw, "path_offsets": plain}
        return {
            "labels": typed(self.scan.labels, "<i4"),
            "ext_ids": typed(self.ext_ids, "<u2"),
            "sizes": typed(self.file_sizes, "<i8"),
            "bounds": np.asarray(self.shard_bounds, dtype="<i8").reshape(-1, 2),
            **path_arrays,
        }

    def digest(self) -> str:
        """sha256 naming this plan exactly (document and arrays), read a block at a time."""
        h = hashlib.sha256(json.dumps(self._document(), sort_keys=True).encode())
        for name, arr in sorted(self._columns().items()):
            h.update(name.encode())
            hash_array(h, arr)
        return h.hexdigest()


def typed(array: Array, dtype: str) -> Array:
    """An in-memory array as ``dtype``; a column as it is (written with that dtype)."""
    if isinstance(array, Column):
        if array.dtype != np.dtype(dtype):
            raise ValueError(f"{array.path.name}: expected {dtype}, found {array.dtype}")
        return array
    return np.ascontiguousarray(array, dtype=dtype)


def make_plan(
    src: str | os.PathLike[str],
    chosen: ConvertOptions,
    *,
    keep_going: bool = False,
    workdir: Path | None = None,
) -> Plan:
    """Scan SRC (or read ``chosen.from_list``, paths relative to SRC) and decide everything a
    convert will write (no stat pass: call :meth:`Plan.with_bounds` for the shard boundaries).
    With ``workdir`` (a folder, created), the per-sample columns are written there and read a
    block at a time, so memory does not grow with the number of files (see
    :mod:`packer._util.columns`)."""
    limit, samples_per_shard = chosen.shard_bytes, chosen.samples_per_shard
    transform = chosen.transform
    pixel_shape = _pixel_shape(get_backend_class(chosen.format), transform)
    backend = make_backend(chosen.format, chosen.options, pixel_shape)
    if chosen.from_list is not None:
        from packer.source.listing import read_list

        wanted = None  # every listed file; images among them are validated by extension
        scan = read_list(chosen.from_list, src, classes_file=chosen.classes_file)
    else:
        wanted = parse_extensions(chosen.extensions)
        scan = _scan_source(
            Path(src),
            wanted,
            chosen.symlinks,
            keep_going=keep_going or chosen.on_error == "skip",
            workdir=workdir,
        )
    ext_names, ext_ids = _extension_table(scan, transform, workdir)
    if limit is None and samples_per_shard is None:
        limit, samples_per_shard = DEFAULT_SHARD_SIZE, default_samples_per_shard(len(scan))
    return Plan(
        scan=scan,
        ext_names=ext_names,
        ext_ids=ext_ids,
        backend_name=backend.name,
        backend_options=backend.options.to_dict(),
        pixel_shape=pixel_shape,
        transform=transform.to_dict() if transform is not None else None,
        validate=chosen.validate,
        on_error=chosen.on_error,
        max_pixels=DEFAULT_MAX_PIXELS if chosen.max_pixels is None else chosen.max_pixels,
        shard_size=limit,
        samples_per_shard=samples_per_shard,
        extensions=wanted,
        symlinks=chosen.symlinks,
        from_list=None if chosen.from_list is None else Path(chosen.from_list).name,
        cut=chosen.cut,
        workdir=workdir,
    )


def _pixel_shape(
    backend_cls: type[Any], transform: Transform | None
) -> tuple[int, int, int] | None:
    """Decide what a transformed pack stores: decoded pixels (no --reencode) or re-encoded bytes."""
    if transform is None or transform.reencode is not None:
        return None
    if not backend_cls.stores_pixels:
        raise UsageError(
            f"format {backend_cls.name} stores encoded images: add --reencode png (lossless), "
            f"jpeg:Q or webp:Q, or use --format {' or '.join(pixel_formats())} to store decoded "
            "pixels"
        )
    return transform.pixel_shape()


def _scan_source(
    src: Path,
    wanted: frozenset[str] | None,
    symlinks: str,
    *,
    keep_going: bool,
    workdir: Path | None,
) -> Scan:
    """Scan SRC; an empty result is an error that says what was found instead."""
    scan = scan_tree(
        src,
        extensions=wanted,
        symlinks=symlinks,
        on_bad_file=_keep_going if keep_going else None,
        workdir=workdir,
    )
    if len(scan) == 0:
        listed = "every file" if wanted is None else "extensions " + ", ".join(sorted(wanted))
        hint = (
            "; symlinks leaving SRC were left out (pass --symlinks follow to pack them)"
            if scan.ignored.by_reason.get("symlink leaving SRC")
            else ""
        )
        seen = f" ({scan.ignored.summary()})" if scan.ignored.count else ""
        raise SourceError(
            f"{src}: no samples found; expected SRC/<class>/<file> with {listed}{seen}{hint}"
        )
    return scan


def _keep_going(skip: Skipped) -> None:
    """``on_bad_file`` for --on-error skip: the scan records the file, the convert goes on."""


def _extension_table(
    scan: Scan, transform: Transform | None, workdir: Path | None
) -> tuple[list[str], Array]:
    """The pack's sorted extension names and each sample's position in them."""
    out = None if workdir is None else workdir / "ext_ids.npy"
    if transform is not None and transform.reencode is not None:
        # every sample is re-encoded to one format
        zeros = (np.zeros(len(b), dtype=np.uint16) for b in blocks_of(scan.labels))
        return [transform.encode_extension], store(zeros, "<u2", out)
    return extension_ids(scan.paths, out)
