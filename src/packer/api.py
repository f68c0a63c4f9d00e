"""The library API: everything the CLI can do. The CLI only parses arguments and renders results."""

from __future__ import annotations

import dataclasses
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from packer.conversion import ConvertReport, convert
from packer.errors import PackerError, PackError
from packer.images import full_check
from packer.manifest import INDEX_FILES, Index, Manifest, sha256_file, tree_bytes
from packer.pack import Pack, Sample, open_pack
from packer.progress import NoProgress, Progress
from packer.registry import backend_sources, make_backend

__all__ = [
    "ConvertReport",
    "Pack",
    "Problem",
    "Sample",
    "VerifyReport",
    "convert",
    "inspect_pack",
    "list_formats",
    "open_pack",
    "verify_pack",
]


def inspect_pack(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What is in a pack, from its manifest (no data file is read). The ``pack inspect --json`` doc."""
    root = Path(path)
    m = Manifest.read(root)
    pack_bytes = tree_bytes(root)
    source_bytes = int(m.source.get("bytes", 0) or 0)
    return {
        "path": str(root),
        "format_version": m.format_version,
        "backend": m.backend,
        "options": m.options,
        "num_samples": m.num_samples,
        "num_classes": len(m.classes),
        "classes": [
            {"name": c, "label": i, "count": n}
            for i, (c, n) in enumerate(zip(m.classes, m.class_counts, strict=True))
        ],
        "payload_bytes": m.payload_bytes,
        "pack_bytes": pack_bytes,
        "source_bytes": source_bytes,
        "size_vs_source": round(pack_bytes / source_bytes, 4) if source_bytes else None,
        "data_files": [d.to_dict() for d in m.data_files],
        "extensions": m.extensions,
        "created_by": m.created_by,
        "skipped": m.skipped,
        "transform": m.transform,
        "sample_shape": m.sample_shape,
    }


@dataclass(frozen=True)
class Problem:
    """One thing ``verify`` found wrong. ``where`` names the file or the sample."""

    kind: str
    where: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclass
class VerifyReport:
    path: Path
    deep: bool
    samples_checked: int = 0
    files_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_not_listed: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "deep": self.deep,
            "samples_checked": self.samples_checked,
            "files_checked": self.files_checked,
            "problems": [p.to_dict() for p in self.problems],
            "problems_not_listed": self.problems_not_listed,
        }


MAX_LISTED_PROBLEMS = 1000


def verify_pack(
    path: str | os.PathLike[str], *, deep: bool = False, progress: Progress | None = None
) -> VerifyReport:
    """Check every data and index file against the manifest's sha256, and every sample's CRC-32.

    ``deep`` also decodes every image. Damage is reported, not raised: the report names each bad
    file and sample. Only a path that is not a pack at all raises :class:`PackError`.
    """
    root = Path(path)
    progress = progress or NoProgress()
    report = VerifyReport(root, deep)

    def problem(kind: str, where: str, message: str) -> None:
        if len(report.problems) < MAX_LISTED_PROBLEMS:
            report.problems.append(Problem(kind, where, message))
        else:
            report.problems_not_listed += 1

    if not root.is_dir():
        raise PackError(
            f"{root}: not a pack (no such folder); pass the folder `pack convert` wrote"
        )
    try:
        manifest = Manifest.read(root)
        make_backend(manifest.backend, manifest.options)
    except PackerError as exc:
        problem("manifest", str(root / "manifest.json"), str(exc))
        return report

    for name in INDEX_FILES:
        expected = manifest.index_sha256.get(name)
        file = root / name
        report.files_checked += 1
        if not file.is_file():
            problem("index", str(file), "missing")
        elif expected is None:
            problem("index", str(file), "no checksum in the manifest")
        elif sha256_file(file) != expected:
            problem(
                "index", str(file), "sha256 does not match the manifest (file changed or damaged)"
            )
    try:
        Index(root, manifest).load_all()
    except PackError as exc:
        problem("index", str(root / "index"), str(exc))
        return report

    bad_files: set[int] = set()
    for file_id, data_file in enumerate(manifest.data_files):
        file = root / data_file.name
        report.files_checked += 1
        if not file.is_file():
            problem("data", str(file), "missing")
            bad_files.add(file_id)
            continue
        size = file.stat().st_size
        if size != data_file.bytes:
            problem(
                "data",
                str(file),
                f"size {size} bytes, manifest says {data_file.bytes} (truncated or appended)",
            )
            bad_files.add(file_id)
        elif sha256_file(file) != data_file.sha256:
            problem("data", str(file), "sha256 does not match the manifest (damaged bytes)")
            bad_files.add(file_id)

    with Pack(root) as pack:
        progress.start(len(pack), f"verify {root.name}")
        crcs = pack.index.crc32
        file_ids = pack.index.locations[:, 0]
        if bad_files and not pack.backend.raw_ranges:
            # Never hand a damaged file to a native parser (LMDB, HDF5, Arrow...): it may crash.
            for file_id in sorted(bad_files):
                count = int(np.count_nonzero(file_ids == file_id))
                problem(
                    "data",
                    str(root / manifest.data_files[file_id].name),
                    f"damaged, so its {count} samples were not read (a damaged {manifest.backend} file "
                    "is not safe to parse); re-create the pack",
                )
        for i in range(len(pack)):
            if bad_files and not pack.backend.raw_ranges and int(file_ids[i]) in bad_files:
                report.samples_checked += 1
                continue
            try:
                sample = pack[i]
            except Exception as exc:
                message = (
                    str(exc)
                    if isinstance(exc, PackerError)
                    else f"unreadable ({type(exc).__name__}: {exc})"
                )
                problem("sample", _sample_where(pack, i), message)
                continue
            finally:
                report.samples_checked += 1
            if zlib.crc32(sample.data) != int(crcs[i]):
                file_id = int(pack.index.locations[i, 0])
                problem(
                    "sample",
                    _sample_where(pack, i),
                    f"CRC-32 mismatch: its bytes in {manifest.data_files[file_id].name} are damaged",
                )
            elif deep and manifest.sample_shape is None:  # pixel packs hold no encoded image
                reason = full_check(sample.data)
                if reason is not None:
                    problem("image", _sample_where(pack, i), reason)
            if i % 256 == 255:
                progress.advance(256, 0)
        progress.finish()
    return report


def _sample_where(pack: Pack, i: int) -> str:
    try:
        return f"sample {i} ({pack.index.key(i)})"
    except Exception:  # a damaged key index must not hide the sample problem itself
        return f"sample {i}"


def list_formats() -> list[dict[str, Any]]:
    """Every backend with its origin, summary and options; a broken plugin is listed with its error."""
    from packer.registry import load_backend

    out: list[dict[str, Any]] = []
    for source in backend_sources():
        entry: dict[str, Any] = {
            "name": source.name,
            "origin": source.origin,
            "target": source.target,
        }
        try:
            cls = load_backend(source)
        except PackerError as exc:
            entry.update(summary="", options={}, error=str(exc))
        else:
            defaults = cls.options_class().to_dict()
            entry.update(summary=cls.summary, options=defaults, error=None)
        out.append(entry)
    return out
