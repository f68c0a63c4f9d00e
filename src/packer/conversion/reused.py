"""The old shards an update keeps, as shard results built from the old pack when asked for.

An update that keeps most of a pack used to hold every kept shard's index rows at once (about
70 bytes a sample). :class:`Reused` holds where each kept shard's rows are and builds its
:class:`~packer.conversion.result.ShardResult` only when the new index is written, reading the old index a
shard at a time (``pread``, not a memory map, so the rows read do not stay resident).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from packer._util.columns import Array, NpyFile
from packer.conversion.result import ShardResult
from packer.errors import PackError
from packer.format.index import INDEX_DIR, KEYS_FILE
from packer.format.manifest import DataFile
from packer.source.omissions import Finding, Skipped


@dataclass(frozen=True)
class Kept:
    """An old shard kept as new shard ``shard``: where its samples are in the new plan and its
    rows in the old index, its old record, and its data file under the new name."""

    shard: int
    start: int  # in the new plan
    stop: int
    old_start: int  # in the old plan
    rows: tuple[int, int]  # in the old index
    data_file: DataFile
    info: dict[str, Any]  # the old shard's record (packer.conversion.state), without arrays


class Reused(Mapping[int, ShardResult]):
    """New shard -> the result of the old shard it keeps, built on each access (see above).

    ``class_map``/``ext_map`` turn old labels and extension ids into new ones; ``sizes`` and
    ``mtimes`` are the new plan's, ``crc32`` the old state's (per old plan sample)."""

    def __init__(
        self,
        pack: Path,
        class_map: np.ndarray,
        ext_map: np.ndarray,
        sizes: Array,
        mtimes: Array,
        crc32: Array,
    ) -> None:
        self.pack = pack
        self.kept: dict[int, Kept] = {}
        self._maps = (class_map, ext_map)
        self._columns = (sizes, mtimes, crc32)

    def keep(self, kept: Kept) -> None:
        self.kept[kept.shard] = kept

    def __getitem__(self, shard: int) -> ShardResult:
        return self._build(self.kept[shard])

    def __iter__(self) -> Iterator[int]:
        return iter(self.kept)

    def __len__(self) -> int:
        return len(self.kept)

    def _build(self, kept: Kept) -> ShardResult:
        index = self.pack / INDEX_DIR
        r0, r1 = kept.rows
        a, b, oa = kept.start, kept.stop, kept.old_start
        class_map, ext_map = self._maps
        sizes, mtimes, crc32 = self._columns
        locations = NpyFile(index / "locations.npy").rows(r0, r1).astype(np.uint64)
        locations[:, 0] = kept.shard
        key_offsets = NpyFile(index / "key_offsets.npy").rows(r0, r1 + 1).astype(np.int64)
        if len(locations) != r1 - r0 or len(key_offsets) != r1 - r0 + 1:
            raise PackError(f"{index}: shorter than its manifest says; re-create the pack")
        with open(index / KEYS_FILE, "rb") as f:
            size = int(key_offsets[-1] - key_offsets[0])
            key_blob = os.pread(f.fileno(), size, int(key_offsets[0]))
        labels = NpyFile(index / "labels.npy").rows(r0, r1)
        extension = NpyFile(index / "extension.npy").rows(r0, r1)
        info = kept.info
        return ShardResult(
            shard=kept.shard,
            data_file=kept.data_file,
            labels=class_map[labels].astype(np.int32),
            locations=locations,
            crc32=NpyFile(index / "crc32.npy").rows(r0, r1),
            extension_ids=ext_map[extension].astype(np.uint16),
            key_blob=key_blob,
            key_lengths=np.diff(key_offsets).astype(np.uint32),
            skipped=[Skipped(**x) for x in info["skipped"]],
            findings=[Finding(**x) for x in info["findings"]],
            source_bytes=int(info["source_bytes"]),
            payload_bytes=int(info["payload_bytes"]),
            start=a,
            consumed=b - a,
            planned_bytes=int(info["planned_bytes"]),
            source_sizes=np.asarray(sizes[a:b], dtype=np.int64),
            source_mtimes=np.asarray(mtimes[a:b], dtype=np.int64),
            source_crc32=np.asarray(crc32[oa : oa + b - a], dtype=np.uint32),
        )
