"""Page-cache tools: warm a file into RAM, evict it, and check how much of it is resident.

Used by ``Pack(in_memory=True)`` (warm) and by ``pack bench`` (warm passes, ``--cold`` passes and
the ``mincore`` check that eviction took effect).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import mmap
import os
from pathlib import Path


def files_of(path: Path) -> list[Path]:
    """``path`` itself, or every file under it, sorted."""
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def warm(path: Path) -> None:
    """Read a file or tree through once, so that later reads are served from RAM (shared by every
    process) and a warm benchmark pass measures reading, not the disk."""
    buffer = bytearray(1 << 20)  # one reused buffer: warming the cache costs this process no heap
    for file in files_of(path):
        try:
            fd = os.open(file, os.O_RDONLY)
        except OSError:
            continue  # readers report missing files with a proper message
        try:
            with contextlib.suppress(OSError, AttributeError):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            with open(fd, "rb", buffering=0, closefd=False) as f:
                while f.readinto(buffer):
                    pass
        finally:
            os.close(fd)


def evict(path: Path) -> None:
    """Drop a file or tree from the page cache (flushing dirty pages first)."""
    for file in files_of(path):
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_fraction(path: Path) -> float | None:
    """Fraction of a file's pages in the page cache (``mincore``), or None where unavailable."""
    libc_name = ctypes.util.find_library("c")
    size = path.stat().st_size
    if libc_name is None or size == 0:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    page = mmap.PAGESIZE
    pages = (size + page - 1) // page
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
    try:
        address = ctypes.addressof(ctypes.c_char.from_buffer(mapped))
        vec = (ctypes.c_ubyte * pages)()
        if libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(size), vec) != 0:
            return None
        return sum(v & 1 for v in vec) / pages
    finally:
        del address
        mapped.close()
