"""Packs in object storage: ``open_pack("s3://bucket/train.pack")`` (any fsspec URL).

The manifest is fetched on every open (one small GET); the index files it lists are fetched once
into a local cache folder named by the manifest's sha256 and checked against the manifest's own
sha256 of each, so a warm open transfers no index bytes and a changed pack is a new cache entry.
Samples of raw-range backends (tar, zip stored, memmap, arrow, uncompressed hdf5) are range
requests: one GET per random sample, and neighbouring ranges coalesced into few large GETs for
sequential iteration and :meth:`RemotePack.read_many`. Every payload is checked against the
CRC-32 in the index, so an object replaced under a reader is an error, never wrong data.
Backends that cannot be read by range say so and point to ``pack stage``.

Needs ``pip install 'packer[s3]'`` for ``s3://`` (fsspec itself comes with it). Credentials and
endpoints come only from the standard places (environment such as ``AWS_ENDPOINT_URL``, profiles,
``storage_options``) and are never logged.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from packer.backends.base import DataReader
from packer.errors import PackError
from packer.read.pack import Pack
from packer.storage.store import MAX_GAP, MAX_SPAN, Store, cached_index


class RemotePack(Pack):
    """A pack read from a URL; the same interface as :class:`~packer.read.pack.Pack`.

    Args:
        url: the pack folder's URL (``s3://bucket/train.pack``, ``gs://...``, ``https://...``).
        storage_options: passed to fsspec (e.g. ``{"client_kwargs": {"endpoint_url": ...}}``).
        cache_dir: where manifest and index are cached (default :func:`default_cache_dir`).
        retries: attempts after the first for a transient error, with exponential backoff
            (default ``$PACKER_RETRIES``, else 3).
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        retries: int | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.store = Store(self.url, self.storage_options, retries=retries)
        super().__init__(cached_index(self.store, self.cache_dir))
        if not self.backend.raw_ranges:
            raise PackError(
                f"{self.url}: a {self.backend.name} pack cannot be read by byte range from "
                f"object storage; copy it to local disk first: pack stage {self.url} LOCAL"
            )
        self._names = [d.name for d in self.manifest.data_files]
        self._crc = self.index.crc32

    def _open_reader(self) -> DataReader:
        self._maps = None
        self._reader = _RangeReader(self)
        self._pid = os.getpid()
        return self._reader

    def read_many(self, indices: Sequence[int] | np.ndarray) -> list[bytes]:
        """The stored bytes of each sample in ``indices`` (in that order), fetched with as few
        requests as neighbouring ranges allow."""
        positions = [self._position(int(i)) for i in np.asarray(indices).ravel().tolist()]
        rows = np.asarray(self.index.locations[positions], dtype=np.int64).reshape(-1, 3)
        return self._read_rows(rows, positions)

    def _blocks(self) -> Iterator[tuple[int, Iterator[bytes], list[int]]]:
        """Blocks of samples in order, the next block's GETs in flight while this one is used."""
        locations, labels = self.index.locations, self.index.labels
        step = self.block_rows
        starts = list(range(0, self._n, step))

        def fetch(start: int) -> list[bytes]:
            stop = min(start + step, self._n)
            rows = np.asarray(locations[start:stop], dtype=np.int64)
            return self._read_rows(rows, list(range(start, stop)))

        with ThreadPoolExecutor(1) as ahead:
            pending = ahead.submit(fetch, starts[0]) if starts else None
            for k, start in enumerate(starts):
                assert pending is not None
                data = pending.result()
                pending = ahead.submit(fetch, starts[k + 1]) if k + 1 < len(starts) else None
                yield start, iter(data), labels[start : start + len(data)].tolist()

    def _read_rows(self, rows: np.ndarray, positions: list[int]) -> list[bytes]:
        """Payloads of index ``rows`` (file, offset, length), coalesced into few GETs."""
        if not len(rows):
            return []
        if len(rows) and int(rows[:, 0].max()) >= len(self._names):
            raise self._bad_location(positions[int(rows[:, 0].argmax())], int(rows[:, 0].max()))
        order = np.lexsort((rows[:, 1], rows[:, 0]))
        spans: list[tuple[int, int, int]] = []  # (file, start, end)
        members: list[list[int]] = []
        for j in order.tolist():
            f, off, n = (int(x) for x in rows[j])
            if spans and spans[-1][0] == f and off - spans[-1][2] <= MAX_GAP:
                g, a, b = spans[-1]
                if max(b, off + n) - a <= MAX_SPAN:
                    spans[-1] = (g, a, max(b, off + n))
                    members[-1].append(j)
                    continue
            spans.append((f, off, off + n))
            members.append([j])
        blobs = self.store.cat_ranges(
            [self._names[f] for f, _, _ in spans],
            [a for _, a, _ in spans],
            [b for _, _, b in spans],
        )
        out: list[bytes] = [b""] * len(rows)
        for (f, a, _), blob, group in zip(spans, blobs, members, strict=True):
            for j in group:
                off, n = int(rows[j, 1]), int(rows[j, 2])
                out[j] = self._checked(blob[off - a : off - a + n], n, positions[j], f)
        return out

    def _checked(self, data: bytes, length: int, i: int, file_id: int) -> bytes:
        if len(data) != length or zlib.crc32(data) != int(self._crc[i]):
            raise PackError(
                f"{self.store.name_url(self._names[file_id])}: sample {i} is not what the index "
                "says (length or CRC-32 differs): the object changed after the pack was written, "
                "or is damaged; open the pack again or re-upload it"
            )
        return data

    def __getstate__(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "storage_options": self.storage_options,
            "cache_dir": self.cache_dir,
            "retries": self.store.retries,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["url"],
            storage_options=state["storage_options"],
            cache_dir=state["cache_dir"],
            retries=state["retries"],
        )

    def __repr__(self) -> str:
        return f"RemotePack({self.url!r}, backend={self.backend.name!r}, samples={self._n})"


class _RangeReader(DataReader):
    """One GET per sample read alone (random access)."""

    def __init__(self, pack: RemotePack) -> None:
        self.pack = pack

    def read(self, file_id: int, offset: int, length: int, index: int) -> bytes:
        pack = self.pack
        data = pack.store.cat(pack._names[file_id], offset, offset + length)
        return pack._checked(data, length, index, file_id)

    def close(self) -> None:
        """Nothing to release: the filesystem belongs to the store."""
