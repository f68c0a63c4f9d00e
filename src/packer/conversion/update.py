"""What changed in SRC since its pack was written, and which of the pack's shards survive it.

``pack convert --update`` and ``pack status`` compare a fresh plan of SRC (one scan and one stat of
every file) with the update state the pack keeps beside its data (:mod:`packer.conversion.state`). A file is
unchanged when it has the same path, class, size and mtime_ns (``checksum``: the same size and
CRC-32 of its bytes, whatever its mtime). A shard of the new plan is reused when an old shard held
exactly its samples, all unchanged (and, for formats that store labels in their data files, with
the same labels): its data file is linked into the new pack and its index rows are taken from the
old index. Everything else is written as a fresh convert would write it, so the result is
byte-identical to one. Content-defined shard cuts (:mod:`packer.conversion.cuts`) keep the shards an insertion
or a removal touches to about two.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from packer._util.columns import BLOCK, Array, hash_array
from packer._util.pathtable import PathTable
from packer._version import __version__
from packer.backends.registry import make_backend
from packer.conversion.items import read_file
from packer.conversion.options import ConvertOptions
from packer.conversion.plan import Plan, make_plan
from packer.conversion.result import ShardResult
from packer.conversion.reused import Kept, Reused
from packer.conversion.state import PackState, load_state
from packer.format.manifest import MANIFEST_NAME, DataFile, Manifest

#: The convert arguments an update compares (a change means a full rebuild). The shard limits are
#: not among them: changing those re-cuts the shards, and any that come out the same are reused.
COMPARED = (
    "format",
    "options",
    "on_error",
    "validate",
    "extensions",
    "symlinks",
    "transform",
    "max_pixels",
    "from_list",
    "classes_file",
    "cut",
)


@dataclass
class Changes:
    """What ``pack status`` reports (``to_dict`` is its ``--json``)."""

    up_to_date: bool
    rebuild: str | None = None  # why every shard is written again, if so
    added: int = 0
    changed: int = 0
    removed: int = 0
    refreshed: int = 0  # same contents, new mtimes (found by ``checksum``)
    classes_added: list[str] = field(default_factory=list)
    classes_removed: list[str] = field(default_factory=list)
    shards: int = 0
    rewrite: list[int] = field(default_factory=list)
    fingerprint: str = ""
    checksum: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "up_to_date": self.up_to_date,
            "rebuild": self.rebuild,
            "files": {"added": self.added, "changed": self.changed, "removed": self.removed},
            "refreshed_timestamps": self.refreshed,
            "classes": {"added": self.classes_added, "removed": self.classes_removed},
            "shards": {"total": self.shards, "to_rewrite": len(self.rewrite)},
            "fingerprint": self.fingerprint,
            "checksum": self.checksum,
        }

    def summary(self) -> str:
        """One line for a person."""
        if self.up_to_date:
            note = f" ({self.refreshed} timestamps refreshed)" if self.refreshed else ""
            return f"up to date{note}"
        if self.rebuild is not None:
            return f"stale: {self.rebuild}; all {self.shards} shard(s) to write"
        parts = [f"{self.added} added", f"{self.changed} changed", f"{self.removed} removed"]
        if self.classes_added:
            parts.append(f"classes added: {', '.join(self.classes_added)}")
        if self.classes_removed:
            parts.append(f"classes removed: {', '.join(self.classes_removed)}")
        return (
            f"stale: {', '.join(parts)}; {len(self.rewrite)} of {self.shards} shard(s) to rewrite"
        )


@dataclass
class Update:
    """The plan of an update: which new shards come from which old data files."""

    plan: Plan
    changes: Changes
    #: new shard -> the result of the old shard it keeps (built when read: packer.conversion.reused)
    reuse: Mapping[int, ShardResult] = field(default_factory=dict)
    kept: dict[int, Kept] = field(default_factory=dict)  # where each kept shard's rows are
    links: dict[int, Path] = field(default_factory=dict)  # new shard -> old data file


def plan_update(
    plan: Plan,
    dst: Path,
    arguments: Mapping[str, Any],
    *,
    checksum: bool = False,
    state: PackState | None = None,
) -> Update:
    """Compare SRC (``plan``, with bounds) with the pack at ``dst`` (which may not exist; its
    ``state`` if already loaded)."""
    crcs = file_crcs(plan.scan.root, plan.scan.paths) if checksum else None
    changes = Changes(
        up_to_date=False,
        shards=len(plan.shard_bounds),
        rewrite=list(range(len(plan.shard_bounds))),
        fingerprint=fingerprint(plan, crcs),
        checksum=checksum,
    )
    update = Update(plan, changes)
    if state is None and (dst / MANIFEST_NAME).is_file():
        state = load_state(dst)
    changes.rebuild = _rebuild_reason(dst, state, arguments)
    if state is None or changes.rebuild is not None:
        changes.added = len(plan.scan)
        return update
    old = state.plan
    if plan.scan.paths == old.scan.paths:  # the common case: one compare of the path bytes
        old_pos = np.arange(len(plan.scan), dtype=np.int64)
    else:
        old_pos = _match(old.scan.paths, plan.scan.paths)
    found = old_pos >= 0
    same = _unchanged(plan, state, old_pos, crcs, changes)
    changes.added = int((~found).sum())
    changes.removed = len(old.scan) - int(found.sum())
    changes.changed = int(found.sum()) - int(same.sum())
    old_classes, new_classes = set(old.scan.classes), set(plan.scan.classes)
    changes.classes_added = [c for c in plan.scan.classes if c not in old_classes]
    changes.classes_removed = [c for c in old.scan.classes if c not in new_classes]
    manifest = Manifest.read(dst)
    _reuse_shards(update, state, manifest, dst, old_pos, same)
    changes.rewrite = [k for k in range(len(plan.shard_bounds)) if k not in update.reuse]
    changes.up_to_date = (
        not changes.rewrite
        and changes.added == changes.removed == changes.changed == 0
        and bool((old_pos == np.arange(len(old_pos))).all())
        and _described(old) == _described(plan)
        and manifest.data_files == [kept.data_file for kept in update.kept.values()]
    )
    return update


def _unchanged(
    plan: Plan, state: PackState, old_pos: np.ndarray, crcs: np.ndarray | None, changes: Changes
) -> np.ndarray:
    """For each new sample, whether the old pack has it unchanged (same file at ``old_pos``: size,
    label, key rule, and mtime or with ``crcs`` contents). A block of new samples at a time,
    each reading only the old rows it spans: the old plan's columns stay on disk."""
    old = state.plan
    class_map = _positions(old.scan.classes, plan.scan.classes)
    old_flags, new_flags = _full_key_flags(old), _full_key_flags(plan)
    same = np.zeros(len(plan.scan), dtype=bool)
    for a in range(0, len(plan.scan), BLOCK):
        b = min(len(plan.scan), a + BLOCK)
        found = old_pos[a:b] >= 0
        at = old_pos[a:b][found]
        unchanged = (
            (_gather(old.file_sizes, at) == np.asarray(plan.file_sizes[a:b])[found])
            & (class_map[_gather(old.scan.labels, at)] == np.asarray(plan.scan.labels[a:b])[found])
            & (old_flags[at] == new_flags[a:b][found])
        )
        mtimes = np.asarray(plan.file_mtimes[a:b])[found]
        if crcs is not None:
            unchanged &= _gather(state.crc32, at) == crcs[a:b][found]
            changes.refreshed += int((unchanged & (_gather(state.mtimes, at) != mtimes)).sum())
        else:
            unchanged &= _gather(state.mtimes, at) == mtimes
        same[a:b][found] = unchanged
    return same


def _gather(column: Array, at: np.ndarray) -> np.ndarray:
    """``column[at]`` reading only the rows between the smallest and largest of ``at`` (sorted
    or nearly so in an update: files keep their order)."""
    if not len(at):
        return np.asarray(column[0:0])
    lo = int(at.min())
    rows = np.asarray(column[lo : int(at.max()) + 1])
    out: np.ndarray = rows[at - lo]
    return out


def _rebuild_reason(dst: Path, state: PackState | None, arguments: Mapping[str, Any]) -> str | None:
    if not (dst / MANIFEST_NAME).is_file():
        return f"{dst} holds no pack yet"
    if state is None:
        return "the pack has no update state (written by an older packer, or removed)"
    if state.plan.created_by.get("version") != __version__:
        return f"the pack was written by packer {state.plan.created_by.get('version')}"
    differ = [n for n in COMPARED if state.arguments.get(n) != arguments.get(n)]
    if differ:
        return f"options changed ({', '.join(differ)})"
    return None


def _reuse_shards(
    update: Update,
    state: PackState,
    manifest: Manifest,
    dst: Path,
    old_pos: np.ndarray,
    same: np.ndarray,
) -> None:
    """Fill ``update.reuse`` and ``update.links`` with the new shards an old one already holds."""
    plan, old = update.plan, state.plan
    sizes, mtimes = plan.file_sizes, plan.file_mtimes
    backend = make_backend(plan.backend_name, plan.backend_options, plan.pixel_shape)
    starts = {a: j for j, (a, _) in enumerate(old.shard_bounds)}
    rows = np.concatenate([[0], np.cumsum([f.num_samples for f in manifest.data_files])])
    if len(manifest.data_files) != len(old.shard_bounds):
        return
    class_map = _positions(old.scan.classes, plan.scan.classes)
    same_classes = list(old.scan.classes) == list(plan.scan.classes)
    ext_map = _positions(manifest.extensions, plan.ext_names)
    reused = Reused(dst, class_map, ext_map, sizes, mtimes, state.crc32)
    update.reuse, update.kept = reused, reused.kept
    for k, (a, b) in enumerate(plan.shard_bounds):
        j = starts.get(int(old_pos[a]))
        if j is None:
            continue
        oa, ob = old.shard_bounds[j]
        info = state.shards[j]
        data_file = DataFile(**info["data_file"])
        source = dst / data_file.name
        if not (
            ob - oa == b - a
            and (old_pos[a:b] == np.arange(oa, ob)).all()
            and same[a:b].all()
            and (
                not backend.labels_in_data
                or (plan.scan.labels[a:b] == old.scan.labels[oa:ob]).all()
            )
            and (not backend.classes_in_data or same_classes)
            and plan.scan.paths[a:b] == old.scan.paths[oa:ob]
            and data_file == manifest.data_files[j]
            and _has_size(source, data_file.bytes)
        ):
            continue
        data_file = DataFile(
            backend.data_file_name(k), data_file.num_samples, data_file.bytes, data_file.sha256
        )
        reused.keep(Kept(k, a, b, oa, (int(rows[j]), int(rows[j + 1])), data_file, info))
        update.links[k] = source


def link_reused(update: Update, staging: Path) -> None:
    """Put each reused data file into the staging folder under its new name: a hard link (no copy,
    the old pack stays intact until the commit), or a copy where links are not possible."""
    for k, source in sorted(update.links.items()):
        target = staging / update.kept[k].data_file.name
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)


def _match(old: PathTable, new: PathTable, block: int = BLOCK) -> np.ndarray:
    """For each new path, the old position holding the same path (by 64-bit hash), or -1.

    The old hashes are sorted once beside their positions (12 bytes a sample below 4G samples);
    the new paths are hashed and looked up ``block`` at a time: no whole-table temporaries."""
    out = np.full(len(new), -1, dtype=np.int64)
    if not len(old):
        return out
    hashes = old.hashes()
    order = np.argsort(hashes, kind="stable")
    if len(order) < 2**32:
        order = order.astype(np.uint32)
    hashes.sort()  # in place: the same array as hashes[order], without a second copy
    start = 0
    for table in new.blocks(block):
        wanted = table.block_hashes()
        at = np.minimum(np.searchsorted(hashes, wanted), len(hashes) - 1)
        hit = hashes[at] == wanted
        out[start : start + len(table)][hit] = order[at[hit]]
        start += len(table)
    return out


def _positions(old: Sequence[str], new: Sequence[str]) -> np.ndarray:
    """Where each old name is among the new ones (-1: gone)."""
    where = {name: i for i, name in enumerate(new)}
    return np.array([where.get(name, -1) for name in old] or [0], dtype=np.int64)


def _full_key_flags(plan: Plan) -> np.ndarray:
    """True for the samples whose key keeps its extension (a name clash): that changes the key."""
    flags = np.zeros(len(plan.scan), dtype=bool)
    if plan.scan.full_keys:
        wanted = PathTable.from_strings(sorted(plan.scan.full_keys)).hashes()
        flags[np.isin(plan.scan.paths.hashes(), wanted)] = True
    return flags


def _described(plan: Plan) -> dict[str, Any]:
    """What the manifest records about the scan and the options (not where SRC is)."""
    document = plan._document()
    document.pop("root")
    return document


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def file_crcs(root: Path, paths: Sequence[str]) -> np.ndarray:
    """CRC-32 of each file's bytes (0 where unreadable), for ``checksum``."""
    prefix = os.fspath(root) + os.sep
    out = np.zeros(len(paths), dtype=np.uint32)
    for i, rel in enumerate(paths):
        try:
            out[i] = zlib.crc32(read_file(prefix + rel))
        except OSError:
            continue
    return out


def fingerprint(plan: Plan, crcs: np.ndarray | None) -> str:
    """sha256 naming SRC's samples as this plan sees them: classes, paths, labels, sizes and
    mtimes (with ``crcs``: their contents' CRC-32 instead, the same on a fresh checkout)."""
    h = hashlib.sha256(json.dumps(plan.scan.classes).encode("utf-8", "surrogateescape"))
    for part in (*plan.scan.paths.encoded_columns(), plan.scan.labels, plan.file_sizes):
        hash_array(h, part)
    h.update(b"crc32" if crcs is not None else b"mtime_ns")
    hash_array(h, crcs if crcs is not None else plan.file_mtimes)
    return h.hexdigest()


def status(src: Path, dst: Path, *, checksum: bool = False) -> Changes:
    """Is the pack at ``dst`` (a local folder) up to date with ``src``? SRC is planned with the
    options the pack was made with (the defaults if there is no pack or no state)."""
    state = load_state(dst) if (dst / MANIFEST_NAME).is_file() else None
    arguments: dict[str, Any] = dict(state.arguments) if state is not None else {}
    plan = make_plan(src, ConvertOptions.from_recorded(arguments)).with_bounds()
    return plan_update(plan, dst, arguments, checksum=checksum, state=state).changes
