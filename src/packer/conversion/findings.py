"""What a user would want to know about the samples before training, found while converting.

The scanner reports what the tree itself shows (loops, links leaving SRC, empty classes); these
checks need the samples' bytes: a file whose content is not its extension's format, and the same
file under two labels.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from packer._util.columns import NpyFile
from packer.format.index import INDEX_DIR, KEYS_FILE
from packer.format.keys import sample_key
from packer.images.checks import EXTENSION_FORMATS, sniff_format
from packer.source.omissions import MAX_LISTED, Finding
from packer.source.scanner import Scan


def content_mismatch(rel: str, ext: str, data: bytes) -> Finding | None:
    """A warning when a valid image's content is not the format its extension says (a PNG named
    .jpg), else None."""
    expected = EXTENSION_FORMATS.get(ext.lower())
    actual = sniff_format(data)
    if expected is None or actual is None or actual == expected:
        return None
    return Finding(
        "extension-mismatch",
        rel,
        f"content is {actual} but the extension says {expected} (decoders that trust the "
        "extension will fail; rename it)",
    )


#: one candidate row: a group of samples with the same bytes' CRC-32, length and label
_ROW = np.dtype(
    [("crc", "<u4"), ("length", "<u8"), ("label", "<i4"), ("first", "<u8"), ("last", "<u8")]
)
_BUCKET_ROWS = 1 << 18  # candidate rows held in memory at a time


Columns = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(labels, CRC-32s, payload lengths) of consecutive samples"""


def index_blocks(pack: Path, block: int = 1 << 16) -> Iterator[Columns]:
    """The index columns of a finished pack a block of samples at a time (read, not mapped:
    memory stays one block whatever the pack's size)."""
    index = pack / INDEX_DIR
    labels = NpyFile(index / "labels.npy")
    crcs = NpyFile(index / "crc32.npy")
    locations = NpyFile(index / "locations.npy")
    for a in range(0, labels.shape[0], block):
        b = min(labels.shape[0], a + block)
        yield labels.rows(a, b), crcs.rows(a, b), locations.rows(a, b)[:, 2]


def key_reader(pack: Path) -> Callable[[int], str]:
    """Sample id -> key, read from a finished pack's index as needed."""
    index = pack / INDEX_DIR
    offsets = NpyFile(index / "key_offsets.npy")

    def key_of(i: int) -> str:
        a, b = offsets.rows(i, i + 2).tolist()
        with open(index / KEYS_FILE, "rb") as f:
            return os.pread(f.fileno(), b - a, a).decode("utf-8", "surrogateescape")

    return key_of


def duplicates_in(pack: Path, scan: Scan) -> list[Finding]:
    """Identical source files under two labels, from the index written in ``pack`` (a pack being
    committed, or a dry run's index of what it would pack)."""
    return duplicates_across_classes(
        scan, index_blocks(pack), key_reader(pack), pack / ".duplicates"
    )


def duplicates_across_classes(
    scan: Scan, blocks: Iterable[Columns], key_of: Callable[[int], str], spill: Path
) -> list[Finding]:
    """Samples whose source bytes are identical but whose labels differ (a leak between classes).

    Candidates come from the index columns (same CRC-32 and length, different labels), found in
    bounded memory: each block is reduced to one row per (CRC-32, length, label) with its first
    and last sample, rows are spread over buckets by CRC-32 (spilled under ``spill`` when they do
    not fit in memory) and each bucket is sorted; the pairs are those of the sort by (CRC-32,
    length, label, sample) that straddle two labels. Each pair is confirmed by comparing the
    source files.
    """
    pairs = _candidate_pairs(blocks, spill)
    if not pairs:
        return []
    wanted = {key_of(i) for a, _, b, _ in pairs for i in (a, b)}
    source = {}  # key -> source path, for the few candidates only
    for p in scan.paths:
        if p.rpartition(".")[0] in wanted or p in wanted:  # cheap filter; sample_key decides
            source[sample_key(p, p in scan.full_keys)[0]] = p
    found: list[Finding] = []
    for a, label_a, b, label_b in pairs:
        pa, pb = source[key_of(a)], source[key_of(b)]
        try:
            equal = (scan.root / pa).read_bytes() == (scan.root / pb).read_bytes()
        except OSError:
            continue
        if equal:
            found.append(
                Finding(
                    "same-bytes-two-classes",
                    pb,
                    f"identical to {pa}: the same file is labelled both "
                    f"{scan.classes[label_a]} and {scan.classes[label_b]}",
                )
            )
    return found


def _candidate_pairs(
    blocks: Iterable[Columns], spill: Path, held: int = _BUCKET_ROWS
) -> list[tuple[int, int, int, int]]:
    """(sample, its label, a later sample with the same CRC-32 and length, its other label), the
    first MAX_LISTED in (CRC-32, length, label) order; past ``held`` rows, rows go to disk."""
    buckets = _Buckets(spill, held)
    start = 0
    for labels, crcs, lengths in blocks:
        n = len(labels)
        rows = np.empty(n, dtype=_ROW)
        rows["crc"], rows["length"], rows["label"] = crcs, lengths, labels
        rows["first"] = rows["last"] = np.arange(start, start + n, dtype=np.uint64)
        buckets.add(_reduce(rows))
        start += n
    found: list[tuple[tuple[int, int, int], tuple[int, int, int, int]]] = []
    for rows in buckets.each():
        rows = _reduce(rows)  # groups split between blocks become one
        same = (rows["crc"][1:] == rows["crc"][:-1]) & (rows["length"][1:] == rows["length"][:-1])
        for h in np.flatnonzero(same)[:MAX_LISTED].tolist():
            a, b = rows[h], rows[h + 1]
            order = (int(a["crc"]), int(a["length"]), int(a["label"]))
            found.append(
                (order, (int(a["last"]), int(a["label"]), int(b["first"]), int(b["label"])))
            )
    found.sort()
    return [pair for _, pair in found[:MAX_LISTED]]


def _reduce(rows: np.ndarray) -> np.ndarray:
    """One row per (CRC-32, length, label), sorted so, spanning the group's first to last sample."""
    if not len(rows):
        return rows
    rows = rows[np.lexsort((rows["label"], rows["length"], rows["crc"]))]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (
        (rows["crc"][1:] != rows["crc"][:-1])
        | (rows["length"][1:] != rows["length"][:-1])
        | (rows["label"][1:] != rows["label"][:-1])
    )
    starts = np.flatnonzero(new)
    out = rows[starts]
    out["first"] = np.minimum.reduceat(rows["first"], starts)
    out["last"] = np.maximum.reduceat(rows["last"], starts)
    return out


class _Buckets:
    """Candidate rows, in memory while few; past ``held`` rows spread over files by CRC-32 (rows
    that can pair always share a file), so each file is sorted on its own."""

    COUNT = 256

    def __init__(self, spill: Path, held: int) -> None:
        self.spill = spill
        self.limit = held
        self.held: list[np.ndarray] = []
        self.size = 0
        self.spilled = False

    def add(self, rows: np.ndarray) -> None:
        if not self.spilled:
            self.held.append(rows)
            self.size += len(rows)
            if self.size <= self.limit:
                return
            self.spill.mkdir(parents=True, exist_ok=True)
            self.spilled = True
            rows, self.held = np.concatenate(self.held), []
        bucket = rows["crc"] % self.COUNT
        for k in np.unique(bucket).tolist():
            with open(self.spill / f"b{k:03d}", "ab") as f:
                rows[bucket == k].tofile(f)

    def each(self) -> Iterator[np.ndarray]:
        if not self.spilled:
            if self.held:
                yield np.concatenate(self.held)
            return
        try:
            for path in sorted(self.spill.iterdir()):
                yield np.fromfile(path, dtype=_ROW)
        finally:
            shutil.rmtree(self.spill, ignore_errors=True)
