"""Small file helpers every part of packer uses: durable writes, sizes, checksums."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

from packer.errors import OutputError


def write_file_synced(path: Path, data: bytes) -> None:
    """Write and fsync: the manifest is the pack's commit record, it must reach the disk."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def raw_to_npy(
    raw: Path, target: Path, dtype: str, shape: tuple[int, ...], *, source: str | None = None
) -> None:
    """Turn a file of raw little-endian values into the ``.npy`` file ``target`` (header, then
    the bytes copied a block at a time) and remove it: arrays streamed to disk while they grow
    never have to be held in memory. With ``source`` (the raw file's dtype, if not ``dtype``),
    each block is cast on the way (the caller knows every value fits)."""
    with open(target, "wb") as out, open(raw, "rb") as src:
        header = {"descr": dtype, "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(out, header)
        if source is None or np.dtype(source) == np.dtype(dtype):
            shutil.copyfileobj(src, out, 1 << 20)
        else:
            while block := src.read(1 << 20):  # a whole number of values: 1 MiB of any itemsize
                out.write(np.frombuffer(block, dtype=source).astype(dtype).tobytes())
    raw.unlink()


def require_free_space(folder: Path, needed: int, what: str, advice: str) -> None:
    """Refuse before the first byte when ``folder``'s disk cannot hold ``needed`` more bytes."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise OutputError(
            f"{folder}: {what} needs {needed / 1e9:.2f} GB free, has {free / 1e9:.2f} GB; {advice}"
        )


#: A pack's update state (:mod:`packer.conversion.state`): beside the pack, not part of it.
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
