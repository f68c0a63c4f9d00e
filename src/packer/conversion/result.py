"""What writing one shard produced: :class:`ShardResult`, its data file and index rows, and what
it left out; sent back by workers, saved for ``--resume``, merged by the driver."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from packer.format.manifest import DataFile
from packer.source.omissions import Finding, Skipped


@dataclass
class ShardResult:
    """What writing one shard produced: its data file and index rows, and what it left out.

    Small and picklable (workers send it back); :meth:`to_record` / :meth:`from_record` turn it
    into arrays plus JSON for ``--resume``, driven by the fields themselves.
    """

    shard: int
    data_file: DataFile
    labels: np.ndarray
    locations: np.ndarray
    crc32: np.ndarray
    extension_ids: np.ndarray
    key_blob: bytes  # the shard's keys, UTF-8 (surrogateescape), back to back
    key_lengths: np.ndarray  # uint32 byte length of each key
    skipped: list[Skipped]
    source_bytes: int
    payload_bytes: int
    start: int = 0
    consumed: int = 0  # samples of the plan this shard took, skipped ones included
    planned_bytes: int = 0  # their source sizes, skipped ones included (what the cut rule counts)
    findings: list[Finding] = field(default_factory=list)
    #: for dataset jobs: the extension names ``extension_ids`` index (the driver maps them to the
    #: pack's table); None when the ids are the plan's
    ext_names: list[str] | None = None
    #: per consumed sample (skipped ones included): the source file's size, mtime_ns (from the
    #: fstat of the read) and CRC-32 of its bytes (0 if unreadable): ``--update``'s change check
    source_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    source_mtimes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    source_crc32: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint32))

    def to_record(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays for an ``.npz``, everything else as JSON-ready values)."""
        arrays: dict[str, np.ndarray] = {}
        info: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                arrays[f.name] = value
            elif isinstance(value, bytes):
                arrays[f.name] = np.frombuffer(value, dtype=np.uint8)
            elif isinstance(value, DataFile):
                info[f.name] = value.to_dict()
            elif f.name == "ext_names":
                info[f.name] = value
            elif isinstance(value, list):
                info[f.name] = [item.to_dict() for item in value]
            else:
                info[f.name] = value
        return arrays, info

    @classmethod
    def from_record(cls, arrays: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> ShardResult:
        """The inverse of :meth:`to_record`; raises KeyError/TypeError/ValueError on a bad record."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name.startswith("source_") and f.name not in arrays and f.name not in info:
                continue  # a record from before these were kept: the default (empty)
            if f.name in arrays:
                raw = arrays[f.name]
                values[f.name] = raw.tobytes() if f.name == "key_blob" else raw
            elif f.name == "data_file":
                values[f.name] = DataFile(**info[f.name])
            elif f.name == "skipped":
                values[f.name] = [Skipped(**x) for x in info[f.name]]
            elif f.name == "findings":
                values[f.name] = [Finding(**x) for x in info[f.name]]
            elif f.name == "ext_names":
                values[f.name] = info.get(f.name)
            else:
                values[f.name] = int(info[f.name])
        return cls(**values)
