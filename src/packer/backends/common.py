"""Helpers shared by several backends: hashed background writes, memory-mapped byte ranges,
WebDataset member naming, and batching rows into Arrow record batches."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import mmap
import os
from abc import abstractmethod
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from packer.backends.base import DataReader, ShardWriter
from packer.errors import PackError
from packer.keys import file_name

if TYPE_CHECKING:
    import pyarrow as pa

    from packer.manifest import Manifest

# pyarrow is imported only where a file is written or parsed: opening a pack and reading its raw
# byte ranges must not pay pyarrow's import time (~40 ms).


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


class MmapRangeReader(DataReader):
    """Reads byte ranges from memory-mapped data files: the shared reader of raw-range backends."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.maps: list[mmap.mmap | bytes] = [self._map(p) for p in self.paths]

    @staticmethod
    def _map(path: Path) -> mmap.mmap | bytes:
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size == 0:
                    return b""  # mmap cannot map an empty file
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise PackError(
                f"{path}: cannot open data file ({exc.strerror}); run `pack verify`"
            ) from None

    def read(self, file_id: int, offset: int, length: int, index: int) -> bytes:
        data = self.maps[file_id][offset : offset + length]
        if len(data) != length:
            raise PackError(
                f"{self.paths[file_id]}: sample {index} lies past the end of the file "
                "(truncated data file); run `pack verify` and re-create the pack"
            )
        return bytes(data)

    def close(self) -> None:
        for m in self.maps:
            if isinstance(m, mmap.mmap):
                m.close()
        self.maps = []


def member_stem(key: str) -> str:
    """The archive member name of a key, without extension, safe for WebDataset-style grouping.

    WebDataset splits a member name at the first dot of its base name, so dots there would split one
    sample into several; undecodable bytes (kept by ``surrogateescape``) cannot be stored as UTF-8.
    Both, and ``%`` itself, are percent-encoded, so the mapping is reversible and collision-free:
    ``cat/img.001`` -> ``cat/img%2E001``. Keys in the pack index are always the original ones.
    """
    head, slash, base = key.rpartition("/")
    if "%" not in key and "." not in base and key.isascii():
        return key  # the common case, no copy
    return _escape(head, dots=False) + slash + _escape(base, dots=True)


def _escape(text: str, *, dots: bool) -> str:
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch == "%" or (dots and ch == "."):
            out.append(f"%{code:02X}")
        elif 0xDC80 <= code <= 0xDCFF:  # a raw byte smuggled in by surrogateescape
            out.append(f"%{code - 0xDC00:02X}")
        else:
            out.append(ch)
    return "".join(out)


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


def display_key(key: str) -> str:
    """Arrow strings must be valid UTF-8: undecodable bytes show as U+FFFD (the pack index keeps them)."""
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


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
    from packer.images import validated_extensions

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
