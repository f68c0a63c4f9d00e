"""What a convert did: totals gathered shard by shard, and the report ``convert`` returns (the
``pack convert --json`` document)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from packer._util.files import tree_bytes
from packer.conversion.result import ShardResult
from packer.format.manifest import DataFile, Manifest
from packer.source.omissions import MAX_LISTED, Finding, Omissions, Skipped
from packer.source.scanner import Scan

if TYPE_CHECKING:
    from packer.conversion.update import Changes


@dataclass
class ConvertReport:
    """What ``convert`` did; ``to_dict`` is the ``pack convert --json`` document."""

    path: Path  # for a URL DST: the local folder it was built in (gone), see ``url``
    backend: str
    num_samples: int
    num_classes: int
    data_files: int
    payload_bytes: int
    pack_bytes: int
    source_bytes: int
    seconds: float
    skipped: list[Skipped] = field(default_factory=list)
    resumed_shards: int = 0
    ignored: Omissions = field(default_factory=Omissions)
    warnings: list[Finding] = field(default_factory=list)
    dry_run: bool = False
    #: with ``update``: what changed (:meth:`packer.conversion.update.Changes.to_dict`)
    update: dict[str, Any] | None = None
    url: str | None = None  # where the pack was uploaded, for a URL DST

    @property
    def location(self) -> str:
        """Where the pack is: its URL or its folder."""
        return self.url or str(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.location,
            "backend": self.backend,
            "dry_run": self.dry_run,
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
            "data_files": self.data_files,
            "payload_bytes": self.payload_bytes,
            "pack_bytes": self.pack_bytes,
            "source_bytes": self.source_bytes,
            "seconds": round(self.seconds, 3),
            "samples_per_second": round(self.num_samples / self.seconds, 1)
            if self.seconds
            else None,
            "skipped": [s.to_dict() for s in self.skipped],
            "resumed_shards": self.resumed_shards,
            "ignored": {
                "count": self.ignored.count,
                "by_reason": dict(sorted(self.ignored.by_reason.items())),
                "files": [s.to_dict() for s in self.ignored.listed],
            },
            "warnings": [w.to_dict() for w in self.warnings],
            **({"update": self.update} if self.update is not None else {}),
        }


@dataclass
class Collected:
    """Totals gathered from shard results as they arrive, in shard order."""

    classes: int
    data_files: list[DataFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    source_bytes: int = 0
    payload_bytes: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def add(self, result: ShardResult) -> None:
        if not len(self.counts):
            self.counts = np.zeros(self.classes, dtype=np.int64)
        self.data_files.append(result.data_file)
        self.skipped.extend(result.skipped)
        self.findings.extend(result.findings)
        self.source_bytes += result.source_bytes
        self.payload_bytes += result.payload_bytes
        self.counts += np.bincount(result.labels, minlength=self.classes)

    @property
    def num_samples(self) -> int:
        return sum(d.num_samples for d in self.data_files)


def build_report(
    dst: Path,
    backend: str,
    scan: Scan | None,
    collected: Collected,
    started: float,
    *,
    pack_bytes: int,
    dry_run: bool = False,
) -> ConvertReport:
    """The report of a convert (``scan``: what was left out of a tree; None for samples)."""
    return ConvertReport(
        path=dst,
        backend=backend,
        num_samples=collected.num_samples,
        num_classes=collected.classes,
        data_files=len(collected.data_files),
        payload_bytes=collected.payload_bytes,
        pack_bytes=pack_bytes,
        source_bytes=collected.source_bytes,
        seconds=time.perf_counter() - started,
        skipped=sorted(collected.skipped, key=lambda s: s.path),
        ignored=scan.ignored if scan is not None else Omissions(),
        warnings=collected.findings[:MAX_LISTED],
        dry_run=dry_run,
    )


def up_to_date_report(dst: Path, changes: Changes, started: float) -> ConvertReport:
    """The report of an update that found nothing to do (the pack's own numbers)."""
    manifest = Manifest.read(dst)
    return ConvertReport(
        path=dst,
        backend=manifest.backend_name,
        num_samples=manifest.num_samples,
        num_classes=len(manifest.classes),
        data_files=len(manifest.data_files),
        payload_bytes=manifest.payload_bytes,
        pack_bytes=tree_bytes(dst),
        source_bytes=int(manifest.source.get("bytes", 0)),
        seconds=time.perf_counter() - started,
        update=changes.to_dict(),
    )
