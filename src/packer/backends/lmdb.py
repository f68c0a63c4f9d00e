"""LMDB: one environment per shard, a single file (``subdir=False``), key = sample key.

Keys are the sample keys as UTF-8 bytes (undecodable names keep their raw bytes); LMDB limits keys
to 511 bytes, so a longer key is stored as ``b"sha256:" + hexdigest(key)``. Values are the stored
bytes. Writes are committed in batches; when the map fills up it is doubled and the batch retried,
so no size has to be guessed up front. Readers open read-only with ``lock=False`` and
``readahead=False``, lazily in each process (an environment must never cross a ``fork``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import lmdb

from packer.backends.base import Backend, BackendOptions, DataReader, KeyOf, ShardWriter
from packer.errors import PackError, UsageError

MAX_KEY_BYTES = 511


def lmdb_key(key: bytes) -> bytes:
    """The LMDB key of a sample key (UTF-8 bytes)."""
    if len(key) <= MAX_KEY_BYTES:
        return key
    return b"sha256:" + hashlib.sha256(key).hexdigest().encode()


@dataclasses.dataclass(frozen=True)
class LmdbOptions(BackendOptions):
    """Args:
    batch_mb: commit a write transaction after about this many MB of values.
    """

    batch_mb: int = 64

    def __post_init__(self) -> None:
        if self.batch_mb < 1:
            raise UsageError(f"lmdb option batch_mb={self.batch_mb} must be at least 1")


class LmdbWriter(ShardWriter):
    def __init__(self, path: Path, options: LmdbOptions) -> None:
        super().__init__(path)
        # lock=False: this process is the only writer and nobody reads a staged file.
        self._env = lmdb.open(
            str(path),
            subdir=False,
            map_size=64 << 20,
            lock=False,
            sync=False,
            metasync=False,
            max_dbs=0,
        )
        self._batch: list[tuple[bytes, bytes]] = []
        self._batch_bytes = 0
        self._limit = options.batch_mb << 20
        self._count = 0

    def add(self, key: str, ext: str, label: int, data: bytes) -> tuple[int, int]:
        self._batch.append((lmdb_key(key.encode("utf-8", "surrogateescape")), data))
        self._batch_bytes += len(data)
        if self._batch_bytes >= self._limit or len(self._batch) >= 100_000:
            self._commit()
        self._count += 1
        return self._count - 1, len(data)

    def _commit(self) -> None:
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for k, v in self._batch:
                        txn.put(k, v)
                break
            except lmdb.MapFullError:
                # The aborted transaction left nothing behind; grow the map and replay the batch.
                self._env.set_mapsize(self._env.info()["map_size"] * 2)
        self._batch, self._batch_bytes = [], 0

    def complete(self) -> None:
        try:
            self._commit()
            self._env.sync(True)
        finally:
            self._env.close()

    def release(self) -> None:
        self._env.close()  # the pending batch is never committed


# py-lmdb refuses to open one environment twice in a process, yet two Pack objects on one pack are
# normal; so environments are shared per (process, file) and reference-counted.
_ENVS: dict[tuple[int, str], tuple[lmdb.Environment, int]] = {}


def _acquire(path: Path) -> lmdb.Environment:
    pid = os.getpid()
    for inherited in [k for k in _ENVS if k[0] != pid]:
        # Opened by the parent before a fork: never used here. Closing the child's copy (read-only,
        # lock=False: no lock table to touch) lets this process open the file again.
        _ENVS.pop(inherited)[0].close()
    key = (pid, os.path.realpath(path))
    env, users = _ENVS.get(key, (None, 0))
    if env is None:
        try:
            env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=False)
        except lmdb.Error as exc:
            raise PackError(
                f"{path}: not a readable LMDB file ({exc}); run `pack verify`"
            ) from None
    _ENVS[key] = (env, users + 1)
    return env


def _release(path: Path) -> None:
    key = (os.getpid(), os.path.realpath(path))
    env, users = _ENVS.pop(key, (None, 0))
    if env is None:
        return
    if users > 1:
        _ENVS[key] = (env, users - 1)
    else:
        env.close()


class LmdbReader(DataReader):
    """Opens each shard's environment on its first read, so a pack of many shards opens fast and a
    damaged shard never has to be parsed to read the others."""

    def __init__(self, paths: Sequence[Path], key_of: KeyOf) -> None:
        self.paths = list(paths)
        self.key_of = key_of
        self.txns: dict[int, lmdb.Transaction] = {}

    def _txn(self, file_id: int) -> lmdb.Transaction:
        txn = self.txns.get(file_id)
        if txn is None:
            env = _acquire(self.paths[file_id])
            txn = self.txns[file_id] = env.begin(buffers=False)
        return txn

    def read(self, file_id: int, offset: int, length: int, index: int) -> bytes:
        value = self._txn(file_id).get(lmdb_key(self.key_of(index)))
        if value is None or len(value) != length:
            raise PackError(
                f"{self.paths[file_id]}: sample {index} is missing or has the wrong size; run `pack verify`"
            )
        return bytes(value)

    def close(self) -> None:
        for file_id, txn in self.txns.items():
            txn.abort()
            _release(self.paths[file_id])
        self.txns = {}


class LmdbBackend(Backend[LmdbOptions]):
    name = "lmdb"
    summary = "LMDB, one single-file environment per shard, key = sample key"
    suffix = "lmdb"
    options_class = LmdbOptions

    @property
    def labels_in_data(self) -> bool:
        return False

    @property
    def raw_ranges(self) -> bool:
        return False

    def open_writer(self, path: Path) -> ShardWriter:
        return LmdbWriter(path, self.options)

    def open_reader(self, paths: Sequence[Path], key_of: KeyOf) -> DataReader:
        return LmdbReader(paths, key_of)
