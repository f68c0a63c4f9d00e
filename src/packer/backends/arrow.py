"""Arrow IPC *file* format shards: memory-mappable, random access by record batch.

Each ``shard-NNNNN.arrow`` holds record batches with columns ``key`` (string), ``label`` (int32),
``data`` (binary: the stored bytes) and ``ext`` (string). Batches are cut at ``batch_rows`` rows or
``batch_mb`` MB, whichever comes first. Readable with ``pyarrow.ipc.open_file`` and by Arrow tools
(polars ``read_ipc``, DuckDB's arrow extension).

The IPC file format stores each batch's ``data`` values uncompressed and contiguous, so once a shard
is written packer records every payload's absolute byte range in the file, and reads it straight from
a memory map: zero Arrow calls per sample.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from packer.backends.base import Backend, BackendOptions, ShardWriter
from packer.errors import UsageError

if TYPE_CHECKING:
    import pyarrow as pa

# pyarrow is imported only where a file is written or parsed: opening a pack and reading its raw
# byte ranges must not pay pyarrow's import time (~40 ms).


@functools.cache
def schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [("key", pa.string()), ("label", pa.int32()), ("data", pa.binary()), ("ext", pa.string())],
        metadata={"packer_format": "packer-arrow-v1"},
    )


@dataclasses.dataclass(frozen=True)
class ArrowOptions(BackendOptions):
    """Args:
    batch_rows: most rows per record batch.
    batch_mb: most MB of payload per record batch.
    """

    batch_rows: int = 1024
    batch_mb: int = 16

    def __post_init__(self) -> None:
        if self.batch_rows < 1 or self.batch_mb < 1:
            raise UsageError("arrow options batch_rows and batch_mb must be at least 1")


def display_key(key: str) -> str:
    """Arrow strings must be valid UTF-8: undecodable bytes show as U+FFFD (the pack index keeps them)."""
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class BatchingWriter(ShardWriter):
    """Collects rows and hands them over a batch at a time; shared by the Arrow and Parquet writers."""

    def __init__(self, path: Path, rows: int, nbytes: int) -> None:
        super().__init__(path)
        self._rows = rows
        self._bytes = nbytes
        self._columns: tuple[list[str], list[int], list[bytes], list[str]] = ([], [], [], [])
        self._pending = 0
        self._count = 0

    def add(self, key: str, ext: str, label: int, data: bytes) -> tuple[int, int]:
        keys, labels, payloads, exts = self._columns
        keys.append(display_key(key))
        labels.append(label)
        payloads.append(data)
        exts.append(ext)
        self._pending += len(data)
        if len(keys) >= self._rows or self._pending >= self._bytes:
            self._flush()
        self._count += 1
        return self._count - 1, len(data)

    def _flush(self) -> None:
        import pyarrow as pa

        keys, labels, payloads, exts = self._columns
        if keys:
            batch = pa.record_batch(
                [
                    pa.array(keys, pa.string()),
                    pa.array(labels, pa.int32()),
                    pa.array(payloads, pa.binary()),
                    pa.array(exts, pa.string()),
                ],
                schema=schema(),
            )
            self.write_batch(batch)
        self._columns = ([], [], [], [])
        self._pending = 0

    def write_batch(self, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class ArrowWriter(BatchingWriter):
    def __init__(self, path: Path, options: ArrowOptions) -> None:
        import pyarrow as pa
        import pyarrow.ipc as ipc

        super().__init__(path, options.batch_rows, options.batch_mb << 20)
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = ipc.new_file(self._sink, schema())
        self._final: np.ndarray | None = None
        self._closed = False

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._flush()
            self._writer.close()
        finally:
            self._sink.close()
        self._final = payload_ranges(self.path, self._count)

    def final_locations(self) -> np.ndarray | None:
        return self._final


def payload_ranges(path: Path, count: int) -> np.ndarray:
    """Absolute (offset, length) of every ``data`` value in an IPC file, in row order."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    out = np.empty((count, 2), dtype=np.uint64)
    source = pa.memory_map(str(path), "r")
    try:
        mapped = source.read_buffer()  # zero-copy: its address is where the file's byte 0 is mapped
        start = mapped.address
        source.seek(0)
        reader = ipc.open_file(source)
        row = 0
        for b in range(reader.num_record_batches):
            column = reader.get_batch(b).column(2)
            _, value_offsets, values = column.buffers()
            offsets = np.frombuffer(value_offsets, dtype=np.int32)[
                column.offset : column.offset + len(column) + 1
            ]
            at = values.address - start if values is not None else 0
            n = len(column)
            out[row : row + n, 0] = at + offsets[:-1].astype(np.uint64)
            out[row : row + n, 1] = np.diff(offsets).astype(np.uint64)
            row += n
    finally:
        source.close()
    if row != count:
        raise RuntimeError(f"{path}: wrote {count} rows but found {row}")
    return out


class ArrowBackend(Backend):
    name = "arrow"
    summary = (
        "Arrow IPC file shards (key, label, data, ext); memory-mapped, readable by pyarrow/polars"
    )
    suffix = "arrow"
    options_class = ArrowOptions

    def open_writer(self, path: Path) -> ShardWriter:
        assert isinstance(self.options, ArrowOptions)
        return ArrowWriter(path, self.options)
