"""Small file helpers every part of packer uses: durable writes, sizes, checksums."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def write_file_synced(path: Path, data: bytes) -> None:
    """Write and fsync: the manifest is the pack's commit record, it must reach the disk."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


#: A pack's update state (:mod:`packer.state`): beside the pack, not part of it.
STATE_DIR = ".packer-state"


def tree_bytes(path: Path) -> int:
    """Apparent size of every file of the pack folder ``path`` (its update state left out)."""
    return sum(
        f.stat().st_size
        for f in path.rglob("*")
        if f.is_file() and f.relative_to(path).parts[0] != STATE_DIR
    )


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
