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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from packer.backends.base import Backend, BackendOptions, ShardWriter
from packer.backends.columnar import HF_CARD, LAYOUTS, BatchingWriter, hf_dataset_card
from packer.errors import UsageError

if TYPE_CHECKING:
    import pyarrow as pa

    from packer.format.index import Index
    from packer.format.manifest import Manifest

# pyarrow is imported only where a file is written or parsed: opening a pack and reading its raw
# byte ranges must not pay pyarrow's import time (~40 ms).


@dataclasses.dataclass(frozen=True)
class ArrowOptions(BackendOptions):
    """Args:
    batch_rows: most rows per record batch.
    batch_mb: most MB of payload per record batch.
    layout: ``packer`` (``data`` binary, int32 ``label``) or ``hf`` (an ``image`` struct and an
        int64 ``ClassLabel`` with the class names in the schema: ``load_dataset("arrow",
        data_files=...)`` gives Image and ClassLabel features without the card).
    """

    batch_rows: int = 1024
    batch_mb: int = 16
    layout: str = "packer"

    def __post_init__(self) -> None:
        if self.batch_rows < 1 or self.batch_mb < 1:
            raise UsageError("arrow options batch_rows and batch_mb must be at least 1")
        if self.layout not in LAYOUTS:
            raise UsageError(
                f"arrow option layout={self.layout!r} must be one of {', '.join(LAYOUTS)}"
            )


class ArrowWriter(BatchingWriter):
    def __init__(self, path: Path, options: ArrowOptions, classes: Sequence[str] = ()) -> None:
        import pyarrow as pa
        import pyarrow.ipc as ipc

        super().__init__(path, options.batch_rows, options.batch_mb << 20, options.layout, classes)
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = ipc.new_file(self._sink, self.schema)
        self._final: np.ndarray | None = None

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def complete(self) -> None:
        try:
            self._flush()
            self._writer.close()
        finally:
            self._sink.close()
        self._final = payload_ranges(self.path, self._count)

    def release(self) -> None:
        self._sink.close()  # no footer: the file is deleted

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
            if isinstance(column, pa.StructArray):  # the hf layout: the image's bytes child
                column = column.field(0)
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


class ArrowBackend(Backend[ArrowOptions]):
    name = "arrow"
    summary = (
        "Arrow IPC file shards (key, label, data, ext); memory-mapped, readable by pyarrow/polars"
    )
    suffix = "arrow"
    options_class = ArrowOptions

    def open_writer(self, path: Path) -> ShardWriter:
        return ArrowWriter(path, self.options, self.classes)

    @property
    def classes_in_data(self) -> bool:
        return self.options.layout == "hf"

    def sidecar_files(self, manifest: Manifest, index: Index) -> dict[str, bytes]:
        """A dataset card, so ``datasets.load_dataset(PACK)`` gives Image and ClassLabel."""
        return {HF_CARD: hf_dataset_card(manifest, self.suffix, self.options.layout)}
