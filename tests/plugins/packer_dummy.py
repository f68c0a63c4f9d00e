"""A complete third-party backend in ~40 lines: one hex-encoded line per sample.

Found through a fake dist-info on sys.path (see conftest.py), it proves entry-point discovery and
that a backend with its own reader, whose locations are not byte ranges, passes the conformance suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from packer.backends.base import Backend, DataReader, KeyOf, NoOptions, ShardWriter


class DummyWriter(ShardWriter):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.file = open(path, "w", encoding="ascii")  # noqa: SIM115
        self.rows = 0

    def add(self, key: str, ext: str, label: int, data: bytes) -> tuple[int, int]:
        self.file.write(data.hex() + "\n")
        self.rows += 1
        return self.rows - 1, len(data)  # location: (line number, length)

    def complete(self) -> None:
        self.file.close()

    def release(self) -> None:
        self.file.close()


class DummyReader(DataReader):
    def __init__(self, paths: Sequence[Path]) -> None:
        self.lines = [p.read_text(encoding="ascii").splitlines() for p in paths]

    def read(self, file_id: int, offset: int, length: int, index: int) -> bytes:
        return bytes.fromhex(self.lines[file_id][offset])


class DummyBackend(Backend[NoOptions]):
    name = "dummy"
    summary = "test plugin: hex lines"
    suffix = "hex"

    @property
    def raw_ranges(self) -> bool:
        return False

    def open_writer(self, path: Path) -> ShardWriter:
        return DummyWriter(path)

    def open_reader(self, paths: Sequence[Path], key_of: KeyOf) -> DataReader:
        return DummyReader(paths)
