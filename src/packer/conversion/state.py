"""The update state: a sidecar in the pack folder that lets ``pack convert --update`` and
``pack status`` see what changed in SRC without reading the pack's data.

``DST/.packer-state/`` holds the plan the pack was written from (paths, labels, sizes, shard
boundaries: :meth:`packer.conversion.plan.Plan.save`), each source file's mtime_ns and CRC-32 as read, each
shard's record (its data file, what it skipped and found) and the options the convert was given.
It is not part of the pack: the manifest does not list it, ``verify`` ignores it, readers never
open it, and deleting it only makes the next ``--update`` a full rebuild. Arrays are ``.npy``
loaded with ``allow_pickle=False``; the rest is JSON.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from packer._util.columns import Array, Column
from packer._util.files import STATE_DIR, raw_to_npy, write_file_synced
from packer.conversion.plan import Plan
from packer.conversion.plan_store import load_plan_dir, save_plan_dir
from packer.conversion.result import ShardResult
from packer.errors import PackError

STATE_FORMAT = "packer-update-state-v1"


@dataclass
class PackState:
    """What a pack was written from, as the update needs it."""

    plan: Plan  # with bounds and sizes
    mtimes: Array  # int64 per plan sample (columns on disk: see packer._util.columns)
    crc32: Array  # uint32 per plan sample (of the source bytes)
    shards: list[dict[str, Any]]  # each shard's ShardResult record without its arrays
    arguments: dict[str, Any]  # the convert's own arguments (see packer.conversion.update.recorded)


class StateRecorder:
    """Gathers what the state needs from the shard results as they are indexed. The per-sample
    columns (size, mtime, CRC-32: 20 bytes a sample) go to raw files in the pack folder as they
    come, not to memory, so a convert's memory does not grow with them."""

    _COLUMNS = (("sizes", "<i8"), ("mtimes", "<i8"), ("crc32", "<u4"))

    def __init__(self, root: Path) -> None:
        self.raw = root / f"{STATE_DIR}.raw"
        shutil.rmtree(self.raw, ignore_errors=True)
        self.raw.mkdir()
        for name, _ in self._COLUMNS:
            (self.raw / name).touch()
        self.shards: list[dict[str, Any]] = []
        self.count = 0
        self.complete = True

    def add(self, result: ShardResult) -> None:
        _, info = result.to_record()
        self.shards.append(info)
        if len(result.source_mtimes) != result.consumed:
            self.complete = False  # e.g. a part written by an older packer: no state then
            return
        self.count += result.consumed
        columns = (result.source_sizes, result.source_mtimes, result.source_crc32)
        for (name, dtype), values in zip(self._COLUMNS, columns, strict=True):
            with open(self.raw / name, "ab") as f:
                f.write(np.ascontiguousarray(values, dtype=dtype).tobytes())

    def save(self, root: Path, plan: Plan, arguments: dict[str, Any] | None) -> None:
        """Write the state into the pack folder ``root`` (before it is committed)."""
        try:
            if not self.complete or arguments is None or self.count != len(plan.scan):
                return
            folder = root / STATE_DIR
            shutil.rmtree(folder, ignore_errors=True)
            raw_to_npy(self.raw / "sizes", self.raw / "sizes.npy", "<i8", (self.count,))
            sizes = Column(self.raw / "sizes.npy")
            bounds = [(int(s["start"]), int(s["start"]) + int(s["consumed"])) for s in self.shards]
            save_plan_dir(dataclasses.replace(plan, sizes=sizes, bounds=bounds), folder / "plan")
            for name, dtype in self._COLUMNS[1:]:
                raw_to_npy(self.raw / name, folder / f"{name}.npy", dtype, (self.count,))
            document = {"format": STATE_FORMAT, "shards": self.shards, "arguments": arguments}
            write_file_synced(
                folder / "state.json", (json.dumps(document, sort_keys=True) + "\n").encode()
            )
        finally:
            shutil.rmtree(self.raw, ignore_errors=True)


def load_state(dst: Path) -> PackState | None:
    """The state of the pack at ``dst``, or None if it has none (or a damaged one)."""
    folder = dst / STATE_DIR
    if not (folder / "state.json").is_file():
        return None
    try:
        document = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        if document.get("format") != STATE_FORMAT:
            return None
        plan, _ = load_plan_dir(folder / "plan", lazy=True)  # its columns stay on disk
        mtimes, crc32 = Column(folder / "mtimes.npy"), Column(folder / "crc32.npy")
        if mtimes.dtype != np.dtype("<i8") or crc32.dtype != np.dtype("<u4"):
            return None
        shards = list(document["shards"])
        if not len(mtimes) == len(crc32) == len(plan.scan) or plan.bounds is None:
            return None
        if len(shards) != len(plan.bounds):
            return None
        return PackState(plan, mtimes, crc32, shards, dict(document["arguments"]))
    except (OSError, ValueError, KeyError, TypeError, PackError):
        return None


def refresh_mtimes(dst: Path, mtimes: np.ndarray) -> None:
    """Record new mtimes of unchanged files (``--checksum`` found the same contents), atomically;
    the pack itself is not touched."""
    path = dst / STATE_DIR / "mtimes.npy"
    tmp = path.with_name(".mtimes.tmp.npy")
    np.save(tmp, mtimes.astype("<i8"), allow_pickle=False)
    tmp.replace(path)
