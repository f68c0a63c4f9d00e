"""Data files written in a background thread and sha256-hashed as they are written, so a backend
need not read a shard back to checksum it."""

from __future__ import annotations

import contextlib
import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

_WRITERS: dict[int, ThreadPoolExecutor] = {}


def _writer_thread() -> ThreadPoolExecutor:
    """The process's one background writer thread, shared by its files one after another
    (starting and joining a thread per shard cost ~2 ms each); a forked child gets its own."""
    pid = os.getpid()
    pool = _WRITERS.get(pid)
    if pool is None:
        _WRITERS.clear()  # a parent's executor is unusable after fork
        pool = _WRITERS[pid] = ThreadPoolExecutor(1, thread_name_prefix="packer-write")
    return pool


class HashingFile:
    """A write-only file that buffers, and writes and sha256-hashes in a background thread.

    Both ``write`` and ``hashlib.update`` release the GIL, so on a multi-core machine the disk I/O and
    the hash of a stream-written data file cost the converting thread almost nothing, and the file
    need not be read back to checksum it. At most two buffers are in flight: memory stays bounded.
    """

    def __init__(self, path: Path, buffer_size: int = 4 << 20) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._hash = hashlib.sha256()
        # one bytearray, not a list of the written bytes: 60k tiny samples cost 4 MB, not 10 MB
        # of objects and their join
        self._buffer = bytearray()
        self._buffer_size = buffer_size
        self._pool = _writer_thread()
        self._pending: Future[None] | None = None
        self.position = 0
        self.closed = False

    def _flush_chunk(self, chunk: bytearray) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)

    def _hand_off(self) -> None:
        chunk, self._buffer = self._buffer, bytearray()
        if self._pending is not None:
            self._pending.result()  # surfaces write errors (disk full) in the caller's thread
        self._pending = self._pool.submit(self._flush_chunk, chunk)

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.position += len(data)
        if len(self._buffer) >= self._buffer_size:
            self._hand_off()

    def close(self) -> str:
        """Flush everything; return the file's sha256."""
        if not self.closed:
            self.closed = True
            try:
                self._hand_off()
                assert self._pending is not None
                self._pending.result()
            finally:
                self._wait()
                self._file.close()
        return self._hash.hexdigest()

    def abandon(self) -> None:
        """Stop without flushing what is buffered (the file is about to be deleted)."""
        if not self.closed:
            self.closed = True
            self._buffer = bytearray()
            self._wait()
            self._file.close()

    def _wait(self) -> None:
        """Let this file's last write finish (its error, if any, was already raised or is moot)."""
        if self._pending is not None:
            with contextlib.suppress(Exception):
                self._pending.result()
