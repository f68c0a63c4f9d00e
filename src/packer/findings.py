"""What a user would want to know about the samples before training, found while converting.

The scanner reports what the tree itself shows (loops, links leaving SRC, empty classes); these
checks need the samples' bytes: a file whose content is not its extension's format, and the same
file under two labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from packer.images import EXTENSION_FORMATS, sniff_format
from packer.index import INDEX_DIR, KEYS_FILE
from packer.keys import sample_key
from packer.omissions import MAX_LISTED, Finding
from packer.scanner import Scan


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


def index_columns(pack: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, bytes, np.ndarray]:
    """labels, crc32, payload lengths, key blob, key offsets of a finished index (memory-mapped)."""
    index = pack / INDEX_DIR
    return (
        np.load(index / "labels.npy", mmap_mode="r"),
        np.load(index / "crc32.npy", mmap_mode="r"),
        np.load(index / "locations.npy", mmap_mode="r")[:, 2],
        (index / KEYS_FILE).read_bytes(),
        np.load(index / "key_offsets.npy", mmap_mode="r"),
    )


def duplicates_across_classes(
    scan: Scan,
    labels: np.ndarray,
    crcs: np.ndarray,
    lengths: np.ndarray,
    keys: bytes,
    key_offsets: np.ndarray,
) -> list[Finding]:
    """Samples whose source bytes are identical but whose labels differ (a leak between classes).

    Candidates come from the index columns (same CRC-32 and length, different labels: vectorised,
    no per-sample objects); each candidate pair is confirmed by comparing the source files.
    """
    if len(labels) < 2:
        return []
    order = np.lexsort((labels, lengths, crcs))
    same = (crcs[order][1:] == crcs[order][:-1]) & (lengths[order][1:] == lengths[order][:-1])
    differ = labels[order][1:] != labels[order][:-1]
    hits = np.flatnonzero(same & differ)[:MAX_LISTED]
    if not len(hits):
        return []

    def key_of(i: int) -> str:
        return keys[int(key_offsets[i]) : int(key_offsets[i + 1])].decode(
            "utf-8", "surrogateescape"
        )

    pairs = [(int(order[h]), int(order[h + 1])) for h in hits.tolist()]
    wanted = {key_of(i) for pair in pairs for i in pair}
    source = {}  # key -> source path, for the few candidates only
    for p in scan.paths:
        if p.rpartition(".")[0] in wanted or p in wanted:  # cheap filter; sample_key decides
            source[sample_key(p, p in scan.full_keys)[0]] = p
    found: list[Finding] = []
    for a, b in pairs:
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
                    f"{scan.classes[int(labels[a])]} and {scan.classes[int(labels[b])]}",
                )
            )
    return found
