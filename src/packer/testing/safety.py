"""Conformance checks that a backend fails safely: damage is found, a failed write leaves
nothing, a discarded shard is never completed, label-only access needs no data file, hostile keys
never lead a writer outside its data file, and DataLoader workers read it correctly."""

from __future__ import annotations

import io
import shutil
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from packer.api import Transform, open_pack, verify_pack
from packer.backends.base import Backend, DataReader, ShardWriter
from packer.backends.registry import get_backend_class, make_backend
from packer.errors import OutputError, PackError, SourceError
from packer.testing.spec import BackendSpec
from packer.testing.trees import imagefolder_order, tree_digest


class SafetyChecks:
    """Mixed into :class:`~packer.testing.conformance.BackendConformance`; uses its fixtures
    (``source``, ``backend``, ``pack_path``, ``pack``) and its ``_convert``."""

    samples_per_shard: ClassVar[int]

    @classmethod
    def _convert(cls, source: Path, dst: Path, backend: BackendSpec, **kwargs: Any) -> Path:
        raise NotImplementedError

    # -- damage is detected -----------------------------------------------------------------

    def _copy(self, pack_path: Path, tmp_path: Path) -> Path:
        dst = tmp_path / "copy.pack"
        shutil.copytree(pack_path, dst)
        return dst

    def test_verify_passes_on_intact_pack(self, pack_path: Path) -> None:
        report = verify_pack(pack_path, deep=True)
        assert report.ok, report.problems
        assert report.samples_checked == len(open_pack(pack_path))

    def test_verify_catches_a_flipped_byte(self, pack_path: Path, tmp_path: Path) -> None:
        damaged = self._copy(pack_path, tmp_path)
        with open_pack(damaged) as p:
            target = len(p) // 2
            file_id, offset, length = (int(v) for v in p.index.locations[target])
            data_file = damaged / p.manifest.data_files[file_id].name
            raw = p.backend.raw_ranges
        blob = bytearray(data_file.read_bytes())
        pos = offset + length // 2 if raw else len(blob) // 2
        blob[pos] ^= 0xFF
        data_file.write_bytes(bytes(blob))
        report = verify_pack(damaged)
        assert not report.ok
        assert any(data_file.name in p.where for p in report.problems)
        if raw:
            assert any(p.where.startswith(f"sample {target} ") for p in report.problems)

    def test_verify_catches_a_truncated_data_file(self, pack_path: Path, tmp_path: Path) -> None:
        damaged = self._copy(pack_path, tmp_path)
        with open_pack(damaged) as p:
            data_file = damaged / p.manifest.data_files[0].name
        size = data_file.stat().st_size
        with open(data_file, "r+b") as f:
            f.truncate(size // 2)
        report = verify_pack(damaged)
        assert not report.ok
        assert any(data_file.name in p.where and "size" in p.message for p in report.problems)

    # -- convert-time transforms ------------------------------------------------------------

    def test_transform_matches_decoding_the_source(
        self, source: Path, backend: BackendSpec, tmp_path: Path
    ) -> None:
        """Pixel backends store exactly the transform's pixels; byte backends a lossless re-encode."""
        pixels = get_backend_class(backend.name).stores_pixels
        transform = Transform(
            size=(12, 16), resize="center-crop", mode="RGB", reencode=None if pixels else "png"
        )
        first = self._convert(source, tmp_path / "a.pack", backend, transform=transform)
        second = self._convert(source, tmp_path / "b.pack", backend, transform=transform, workers=2)
        assert tree_digest(first) == tree_digest(second)
        _, expected = imagefolder_order(source)
        with open_pack(first) as pack:
            assert pack.manifest.transform == transform.to_dict()
            assert len(pack) == len(expected)
            for i, (rel, label) in enumerate(expected):
                want = transform.pixels((source / rel).read_bytes())
                if pixels:
                    got = pack.array(i)
                else:
                    assert pack[i].ext == "png"
                    got = np.asarray(Image.open(io.BytesIO(pack.read(i))))
                assert got.shape == (12, 16, 3) and np.array_equal(got, want), rel
                assert pack.label(i) == label
        assert verify_pack(first, deep=True).ok

    # -- atomicity and bad input ------------------------------------------------------------

    def test_failure_mid_write_leaves_nothing(
        self, source: Path, backend: BackendSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        backend_cls = get_backend_class(backend.name)
        original_open = backend_cls.open_writer
        calls = {"n": 0}

        def open_failing_writer(self: Backend[Any], path: Path) -> ShardWriter:
            writer = original_open(self, path)
            original_add = writer.add

            def add(*args: Any) -> tuple[int, int]:
                calls["n"] += 1
                if calls["n"] == 10:
                    raise OSError(28, "No space left on device")
                return original_add(*args)

            writer.add = add  # type: ignore[method-assign,assignment]
            return writer

        monkeypatch.setattr(backend_cls, "open_writer", open_failing_writer)
        dst = tmp_path / "out.pack"
        with pytest.raises(OutputError, match="No space left on device.*free some disk space"):
            self._convert(source, dst, backend)
        assert not dst.exists()
        assert calls["n"] == 10
        assert list(tmp_path.iterdir()) == []

    def test_bad_image_fail_and_skip(
        self, source: Path, backend: BackendSpec, tmp_path: Path
    ) -> None:
        tree = tmp_path / "tree"
        shutil.copytree(source, tree)
        bad = tree / "cat" / "a.jpg"
        bad.write_bytes(bad.read_bytes()[:-200])  # truncated download
        (tree / "dog" / "fake.jpg").write_text("<html>404</html>")
        with pytest.raises(SourceError, match=r"a\.jpg"):
            self._convert(tree, tmp_path / "fail.pack", backend)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]  # no partial folder either
        self._convert(tree, tmp_path / "skip.pack", backend, on_error="skip")
        with open_pack(tmp_path / "skip.pack") as p:
            keys = set(p.keys())
            assert "cat/a" not in keys and "dog/fake" not in keys
            assert sorted(s["path"] for s in p.manifest.skipped) == ["cat/a.jpg", "dog/fake.jpg"]
            assert len(p) == len(imagefolder_order(source)[1]) - 1

    def test_discard_never_completes_the_file(self, backend: BackendSpec, tmp_path: Path) -> None:
        """A failure mid-shard drops the file and its scratch files without writing footers,
        end markers or commits (the contract of ShardWriter.discard)."""
        impl = make_backend(backend.name, backend.options)
        writer = impl.open_writer(tmp_path / impl.data_file_name(0))
        completed: list[bool] = []
        original = writer.complete
        writer.complete = lambda: completed.append(True) or original()  # type: ignore[method-assign,func-returns-value]
        with pytest.raises(RuntimeError, match="boom"), writer:
            writer.add("cat/a", "jpg", 0, b"\xff\xd8 some bytes")
            raise RuntimeError("boom")
        assert completed == []
        assert list(tmp_path.iterdir()) == []
        writer.finish()  # a discarded writer stays discarded
        writer.discard()
        assert completed == [] and list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize(
        "key", ["../../escape", "/absolute/path", "cat/../../../up", "a\\b", "-rf", "nul\x01ctrl"]
    )
    def test_hostile_keys_never_leave_the_data_file(
        self, backend: BackendSpec, tmp_path: Path, key: str
    ) -> None:
        """Keys are data, never paths: whatever a key says, a writer creates nothing but its data
        file, and the sample reads back from its location."""
        box = tmp_path / "box" / "inner"
        box.mkdir(parents=True)
        impl = make_backend(backend.name, backend.options)
        path = box / impl.data_file_name(0)
        payload = b"\x89PNG hostile payload"
        with impl.open_writer(path) as writer:
            location = writer.add(key, "png", 3, payload)
        final = writer.final_locations()
        offset, length = (int(v) for v in (final[0] if final is not None else location))
        assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
            "box",
            "box/inner",
            f"box/inner/{path.name}",
        ]
        reader = _reader(impl, [path], lambda i: key.encode("utf-8", "surrogateescape"))
        try:
            assert reader.read(0, offset, length, 0) == payload
        finally:
            reader.close()

    def test_label_only_access_needs_no_data_file(self, pack_path: Path, tmp_path: Path) -> None:
        """Labels, classes and keys come from the index: they work with every data file gone."""
        stripped = self._copy(pack_path, tmp_path)
        with open_pack(stripped) as p:
            names = [d.name for d in p.manifest.data_files]
        for name in names:
            (stripped / name).unlink()
        with open_pack(pack_path) as intact, open_pack(stripped) as p:
            assert p.labels.tolist() == intact.labels.tolist()
            assert list(p.keys()) == list(intact.keys())
            assert [p.label(i) for i in range(len(p))] == intact.labels.tolist()
            with pytest.raises(PackError, match=names[0].split(".")[0]):
                p.read(0)

    def test_verify_names_each_damaged_sample(
        self,
        pack_path: Path,
        backend: BackendSpec,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Per-sample damage is found by each sample's CRC-32, for every backend: raw-range
        samples are damaged in the file itself; for backends whose own reader returns the bytes
        (a damaged native file is never parsed), the reader hands back altered bytes. Exactly the
        damaged samples are named."""
        damaged = self._copy(pack_path, tmp_path)
        with open_pack(damaged) as p:
            targets = {1, len(p) - 2}
            raw = p.backend.raw_ranges
            where = {i: [int(v) for v in p.index.locations[i]] for i in targets}
            files = [damaged / d.name for d in p.manifest.data_files]
        if raw:
            for file_id, offset, length in where.values():
                blob = bytearray(files[file_id].read_bytes())
                blob[offset + length // 2] ^= 0xFF
                files[file_id].write_bytes(bytes(blob))
        else:
            backend_cls = get_backend_class(backend.name)
            original_open = backend_cls.open_reader

            def open_reader(self: Backend[Any], paths: Any, key_of: Any) -> DataReader:
                return _Damaging(original_open(self, paths, key_of), targets)

            monkeypatch.setattr(backend_cls, "open_reader", open_reader)
        report = verify_pack(damaged)
        named = sorted(int(p.where.split()[1]) for p in report.problems if p.kind == "sample")
        assert named == sorted(targets)

    @pytest.mark.torch
    def test_dataloader_with_workers_reads_every_sample(
        self, source: Path, pack_path: Path
    ) -> None:
        torch = pytest.importorskip("torch")
        from packer.pytorch import PackDataset

        ds = PackDataset(pack_path, decode="bytes")
        loader = torch.utils.data.DataLoader(
            ds, batch_size=4, num_workers=2, collate_fn=list, multiprocessing_context="fork"
        )
        got = sorted((zlib.crc32(data), label) for batch in loader for data, label in batch)
        _, listed = imagefolder_order(source)  # the source tree is the oracle
        assert got == sorted(
            (zlib.crc32((source / rel).read_bytes()), label) for rel, label in listed
        )


def _reader(impl: Backend[Any], paths: list[Path], key_of: Any) -> DataReader:
    if impl.raw_ranges:
        from packer.backends.ranges import MmapRangeReader

        return MmapRangeReader(paths)
    return impl.open_reader(paths, key_of)


class _Damaging(DataReader):
    """Wraps a reader and flips one byte of the samples in ``targets``."""

    def __init__(self, inner: DataReader, targets: set[int]) -> None:
        self.inner, self.targets = inner, targets

    def read(self, file_id: int, offset: int, length: int, index: int) -> bytes:
        data = self.inner.read(file_id, offset, length, index)
        return _flip(data) if index in self.targets else data

    def close(self) -> None:
        self.inner.close()


def _flip(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF]) if data else b"\x00"
