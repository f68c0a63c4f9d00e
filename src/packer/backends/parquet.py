"""Parquet shards: row groups sized for random access, the media column stored as is.

Each ``shard-NNNNN.parquet`` has columns ``key`` (string), ``label`` (int32), ``data`` (binary) and
``ext`` (string). ``data`` is written PLAIN, uncompressed and without statistics (JPEG/PNG bytes are
already compressed and min/max of images is meaningless); the small metadata columns are
zstd-compressed, ``ext`` dictionary-encoded. A row group is cut at ``row_group_rows`` rows or
``row_group_mb`` MB. Readable with pyarrow, DuckDB, polars and Spark.

Locations are (row within the shard, length). A read decodes the sample's row group once and keeps
it, so sequential reads cost one decode per row group; random reads pay a row-group decode each.
Pick arrow or memmap for random-access training, parquet for interchange and analytics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from packer.backends.base import Backend, BackendOptions, DataReader, KeyOf, ShardWriter
from packer.backends.columnar import HF_CARD, LAYOUTS, BatchingWriter, hf_dataset_card
from packer.errors import PackError, UsageError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from packer.format.index import Index
    from packer.format.manifest import Manifest


@dataclasses.dataclass(frozen=True)
class ParquetOptions(BackendOptions):
    """Args:
    row_group_rows: most rows per row group.
    row_group_mb: most MB of payload per row group.
    layout: ``packer`` (``data`` binary, int32 ``label``) or ``hf`` (an ``image`` struct and an
        int64 ``ClassLabel`` with the class names in the schema: ``load_dataset("parquet",
        data_files=...)`` gives Image and ClassLabel features without the card).
    """

    row_group_rows: int = 1024
    row_group_mb: int = 8
    layout: str = "packer"

    def __post_init__(self) -> None:
        if self.row_group_rows < 1 or self.row_group_mb < 1:
            raise UsageError("parquet options row_group_rows and row_group_mb must be at least 1")
        if self.layout not in LAYOUTS:
            raise UsageError(
                f"parquet option layout={self.layout!r} must be one of {', '.join(LAYOUTS)}"
            )


class ParquetShardWriter(BatchingWriter):
    def __init__(self, path: Path, options: ParquetOptions, classes: Sequence[str] = ()) -> None:
        import pyarrow.parquet as pq

        super().__init__(
            path, options.row_group_rows, options.row_group_mb << 20, options.layout, classes
        )
        media = {"image.bytes": "none", "image.path": "zstd"} if self._hf else {"data": "none"}
        self._writer = pq.ParquetWriter(
            str(path),
            self.schema,
            compression={"key": "zstd", "label": "zstd", "ext": "zstd", **media},
            use_dictionary=["ext"],
            write_statistics=["key", "label"],
        )

    def write_batch(self, batch: pa.RecordBatch) -> None:
        import pyarrow as pa

        self._writer.write_table(pa.Table.from_batches([batch]), row_group_size=batch.num_rows)

    def complete(self) -> None:
        self._flush()
        self._writer.close()

    def release(self) -> None:
        self._writer.close()  # writes a footer for the rows so far; the file is then deleted


class ParquetReader(DataReader):
    """Keeps the last decoded row group of each shard."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.files: dict[int, tuple[pq.ParquetFile, np.ndarray]] = {}
        self.cached: dict[int, tuple[int, list[bytes | None]]] = {}

    def _file(self, file_id: int) -> tuple[pq.ParquetFile, np.ndarray]:
        entry = self.files.get(file_id)
        if entry is None:
            import pyarrow as pa
            import pyarrow.parquet as pq

            path = self.paths[file_id]
            try:
                pf = pq.ParquetFile(str(path), memory_map=True)
            except (OSError, pa.ArrowException) as exc:
                raise PackError(
                    f"{path}: not a readable Parquet file ({exc}); run `pack verify`"
                ) from None
            rows = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
            entry = self.files[file_id] = (pf, np.cumsum([0, *rows]))
        return entry

    def read(self, file_id: int, offset: int, length: int, index: int) -> bytes:
        pf, starts = self._file(file_id)
        group = int(np.searchsorted(starts, offset, side="right")) - 1
        cached = self.cached.get(file_id)
        if cached is None or cached[0] != group:
            if not 0 <= group < pf.num_row_groups:
                raise PackError(
                    f"{self.paths[file_id]}: sample {index} is past the last row; run `pack verify`"
                )
            values = _payloads(pf.read_row_group(group, columns=[_media(pf)]).column(0))
            cached = self.cached[file_id] = (group, values)
        value = cached[1][offset - int(starts[group])]
        if value is None or len(value) != length:
            raise PackError(
                f"{self.paths[file_id]}: sample {index} has the wrong size; run `pack verify`"
            )
        return value

    def close(self) -> None:
        for pf, _ in self.files.values():
            pf.close()
        self.files, self.cached = {}, {}


def _media(pf: pq.ParquetFile) -> str:
    """The payload column: ``data``, or the hf layout's ``image`` struct."""
    return "image" if "image" in pf.schema_arrow.names else "data"


def _payloads(column: pa.ChunkedArray) -> list[bytes | None]:
    import pyarrow as pa

    values = column.combine_chunks()
    if isinstance(values, pa.StructArray):
        values = values.field("bytes")
    payloads: list[bytes | None] = values.to_pylist()
    return payloads


class ParquetBackend(Backend[ParquetOptions]):
    name = "parquet"
    summary = "Parquet shards, uncompressed media column; for interchange (DuckDB, polars, Spark)"
    suffix = "parquet"
    options_class = ParquetOptions

    @property
    def raw_ranges(self) -> bool:
        return False

    def open_writer(self, path: Path) -> ShardWriter:
        return ParquetShardWriter(path, self.options, self.classes)

    @property
    def classes_in_data(self) -> bool:
        return self.options.layout == "hf"

    def sidecar_files(self, manifest: Manifest, index: Index) -> dict[str, bytes]:
        """A dataset card, so ``datasets.load_dataset(PACK)`` gives Image and ClassLabel."""
        return {HF_CARD: hf_dataset_card(manifest, self.suffix, self.options.layout)}

    def open_reader(self, paths: Sequence[Path], key_of: KeyOf) -> DataReader:
        return ParquetReader(paths)
