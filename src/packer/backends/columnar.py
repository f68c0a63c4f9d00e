"""What the Arrow and Parquet backends share: the row schema (packer's and Hugging Face's layout),
batching rows into record batches, and the dataset card that makes ``datasets`` read a pack."""

from __future__ import annotations

import functools
import json
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from packer.backends.base import ShardWriter
from packer.backends.names import display_key
from packer.format.keys import file_name

if TYPE_CHECKING:
    import pyarrow as pa

    from packer.format.manifest import Manifest

# pyarrow is imported only where a file is written or parsed: opening a pack and reading its raw
# byte ranges must not pay pyarrow's import time (~40 ms).


LAYOUTS = ("packer", "hf")


@functools.cache
def row_schema(layout: str = "packer", classes: tuple[str, ...] = ()) -> pa.Schema:
    """Columns of an Arrow or Parquet shard. ``packer``: ``key``, ``label`` (int32), ``data``
    (binary), ``ext``. ``hf``: what Hugging Face ``datasets`` reads as features with no card:
    ``key``, ``label`` (int64, a ``ClassLabel`` of ``classes``), ``image`` (a struct of ``bytes``
    and ``path``, an ``Image``), ``ext``, its features in the schema's ``huggingface`` metadata."""
    import pyarrow as pa

    if layout != "hf":
        return pa.schema(
            [
                ("key", pa.string()),
                ("label", pa.int32()),
                ("data", pa.binary()),
                ("ext", pa.string()),
            ],
            metadata={"packer_format": "packer-arrow-v1"},
        )
    string = {"dtype": "string", "_type": "Value"}
    features = {
        "key": string,
        "label": {"names": list(classes), "_type": "ClassLabel"},
        "image": {"_type": "Image"},
        "ext": string,
    }
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    return pa.schema(
        [("key", pa.string()), ("label", pa.int64()), ("image", image), ("ext", pa.string())],
        metadata={
            "packer_format": "packer-arrow-hf-v1",
            "huggingface": json.dumps({"info": {"features": features}}),
        },
    )


class BatchingWriter(ShardWriter):
    """Collects rows and hands them over a batch at a time; shared by the Arrow and Parquet writers.

    Batches use :func:`row_schema`; ``complete`` must call ``self._flush()`` before its footer.
    """

    def __init__(
        self,
        path: Path,
        rows: int,
        nbytes: int,
        layout: str = "packer",
        classes: Sequence[str] = (),
    ) -> None:
        super().__init__(path)
        self.schema = row_schema(layout, tuple(classes))
        self._hf = layout == "hf"
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
            data: pa.Array = pa.array(payloads, pa.binary())
            if self._hf:  # Image's struct; path: the file name in SRC (file_name(key, ext))
                names = [file_name(k, e) for k, e in zip(keys, exts, strict=True)]
                data = pa.StructArray.from_arrays(
                    [data, pa.array(names, pa.string())], names=["bytes", "path"]
                )
            label_type = pa.int64() if self._hf else pa.int32()
            batch = pa.record_batch(
                [
                    pa.array(keys, pa.string()),
                    pa.array(labels, label_type),
                    data,
                    pa.array(exts, pa.string()),
                ],
                schema=self.schema,
            )
            self.write_batch(batch)
        self._columns = ([], [], [], [])
        self._pending = 0

    @abstractmethod
    def write_batch(self, batch: pa.RecordBatch) -> None:
        """Write one record batch of rows (``key``, ``label``, ``data``, ``ext``)."""


HF_CARD = "README.md"


def hf_dataset_card(manifest: Manifest, suffix: str, layout: str = "packer") -> bytes:
    """A Hugging Face dataset card whose YAML header makes ``datasets.load_dataset(PACK)`` read the
    shards with features: ``label`` a ``ClassLabel`` with the class names and ``data`` an
    ``Image`` (when every sample is an image; else ``binary``). The shards are not touched, so
    packer's own raw-range reads stay as they are."""
    from packer.images.checks import validated_extensions

    images = validated_extensions(frozenset(manifest.extensions))
    is_image = all(e.lower() in images for e in manifest.extensions) and not manifest.sample_shape
    q = json.dumps  # a JSON string is a valid YAML double-quoted scalar
    lines = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        f"    path: {q('shard-*.' + suffix)}",
        "dataset_info:",
        "  features:",
        "  - name: key",
        "    dtype: string",
        "  - name: label",
        "    dtype:",
        "      class_label:",
        "        names:",
        *(f"          {q(str(i))}: {q(name)}" for i, name in enumerate(manifest.classes)),
        *(
            ["  - name: image", "    dtype: image"]
            if layout == "hf"
            else ["  - name: data", f"    dtype: {'image' if is_image else 'binary'}"]
        ),
        "  - name: ext",
        "    dtype: string",
        "---",
        "",
        f"A packer pack ({manifest.backend_name}): {manifest.num_samples} samples in "
        f"{len(manifest.classes)} classes, {len(manifest.data_files)} shard(s).",
        "",
        "    import datasets",
        '    ds = datasets.load_dataset("PATH/TO/THIS/FOLDER", split="train")',
        "",
    ]
    return "\n".join(lines).encode()
