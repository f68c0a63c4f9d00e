"""The backend conformance suite, shipped so that plugin authors can run it on their own backend.

Every built-in backend runs it (``tests/test_conformance.py``); a third-party backend is done when
it passes too::

    from packer.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backend_name = "myformat"

Ground truth is always the source tree read with plain ``open()``, never the writer's own output.
Needs pytest and hypothesis.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from packer.api import verify_pack
from packer.backends.base import Backend, ShardWriter
from packer.conversion import convert
from packer.demo import encode, render
from packer.errors import OutputError, SourceError
from packer.pack import Pack, open_pack
from packer.registry import get_backend_class
from packer.staging import partial_path
from packer.transforms import Transform

# -- a small tree with the awkward cases a real dataset has -------------------------------------

EDGE_FILES = (
    ("cat/a.jpg", "JPEG"),
    ("cat/b.png", "PNG"),
    ("cat/img.001.jpg", "JPEG"),  # dots in the stem: WebDataset would split the key
    ("cat/nested/deeper/c.jpg", "JPEG"),  # nested folders belong to the top-level class
    ("cat/UPPER.JPG", "JPEG"),
    ("dog/with space.jpg", "JPEG"),
    ("dog/ünïcödé 🐱.png", "PNG"),
    ("dog/100%.jpg", "JPEG"),
    (
        "dog-x/z.jpg",
        "JPEG",
    ),  # sorts between "dog" and "dog/..." keys: order must stay ImageFolder's
)
IGNORED_FILES = (
    "cat/.hidden.jpg",
    "cat/Thumbs.db",
    "cat/notes.txt",
    "dog/.DS_Store",
    "top-level.jpg",
)
EMPTY_CLASSES = ("empty",)


def make_edge_tree(root: Path, *, extra_per_class: int = 6, seed: int = 0) -> Path:
    """The edge cases above plus ``extra_per_class`` plain images per class, all real images."""
    rng = np.random.default_rng(seed)
    files = list(EDGE_FILES)
    for cls in ("cat", "dog", "dog-x"):
        files += [
            (f"{cls}/img_{i:03d}.{'png' if i % 3 == 0 else 'jpg'}", "PNG" if i % 3 == 0 else "JPEG")
            for i in range(extra_per_class)
        ]
    for rel, fmt in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(render(rel.split("/")[0], rng, 24 + int(rng.integers(0, 24))), fmt))
    for rel in IGNORED_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"not a sample")
    for cls in EMPTY_CLASSES:
        (root / cls).mkdir(parents=True, exist_ok=True)
    return root


#: torchvision.datasets.folder.IMG_EXTENSIONS, copied (not imported from packer: an oracle).
TORCHVISION_IMG_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)
_JUNK = {"thumbs.db", "desktop.ini", "__macosx", "$recycle.bin"}


def imagefolder_order(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """What torchvision's ImageFolder would list, re-implemented here as an independent oracle.

    ImageFolder's rule (sorted class folders, ``sorted(os.walk(followlinks=True))``, sorted names,
    ``name.lower().endswith(IMG_EXTENSIONS)``) with packer's documented differences: hidden files
    and folders and OS junk are left out.
    """

    def hidden(name: str) -> bool:
        return name.startswith(".") or name.lower() in _JUNK

    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not hidden(e.name))
    samples: list[tuple[str, int]] = []
    for label, cls in enumerate(classes):
        walked = []
        for dirpath, dirnames, names in os.walk(root / cls, followlinks=True):
            dirnames[:] = [d for d in dirnames if not hidden(d)]
            walked.append((dirpath, names))
        for dirpath, names in sorted(walked):
            for name in sorted(names):
                if hidden(name) or not name.lower().endswith(TORCHVISION_IMG_EXTENSIONS):
                    continue
                samples.append((Path(dirpath, name).relative_to(root).as_posix(), label))
    return classes, samples


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def read_crcs(pack: Pack, indices: list[int]) -> list[int]:
    """Worker-side helper (module level so spawn can import it)."""
    return [zlib.crc32(pack[i].data) for i in indices]


@dataclass(frozen=True)
class BackendSpec:
    """A backend name and the options to convert with."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


class BackendConformance:
    """Subclass and set ``backend_name`` (and ``backend_options``) to run the suite on a backend."""

    backend_name: ClassVar[str] = ""
    backend_options: ClassVar[dict[str, Any]] = {}
    samples_per_shard: ClassVar[int] = 7  # several shards even on the small tree

    # -- fixtures ---------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> BackendSpec:
        """The backend under test; override this fixture to parametrize over several."""
        if not cls.backend_name:
            pytest.skip("set backend_name on the subclass")
        return BackendSpec(cls.backend_name, dict(cls.backend_options))

    @pytest.fixture(scope="class")
    @classmethod
    def source(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        return make_edge_tree(tmp_path_factory.mktemp("src") / "tree")

    @classmethod
    def _convert(cls, source: Path, dst: Path, backend: BackendSpec, **kwargs: Any) -> Path:
        kwargs.setdefault("samples_per_shard", cls.samples_per_shard)
        convert(source, dst, backend.name, options=backend.options, **kwargs)
        return dst

    @pytest.fixture(scope="class")
    @classmethod
    def pack_path(
        cls, source: Path, backend: BackendSpec, tmp_path_factory: pytest.TempPathFactory
    ) -> Path:
        return cls._convert(source, tmp_path_factory.mktemp("pack") / "out.pack", backend)

    @pytest.fixture
    def pack(self, pack_path: Path) -> Any:
        with open_pack(pack_path) as p:
            yield p

    # -- round trip, labels, keys, order ----------------------------------------------------

    def test_round_trip_is_byte_exact(self, pack: Pack, source: Path) -> None:
        _, expected = imagefolder_order(source)
        assert len(pack) == len(expected)
        for sample, (rel, _) in zip(pack, expected, strict=True):
            assert f"{sample.key}.{sample.ext}" == rel
            assert sample.data == (source / rel).read_bytes()

    def test_labels_follow_sorted_class_folders(self, pack: Pack, source: Path) -> None:
        classes, expected = imagefolder_order(source)
        assert pack.classes == classes
        assert pack.labels.tolist() == [label for _, label in expected]
        assert [pack.label(i) for i in range(len(pack))] == pack.labels.tolist()
        assert all(pack[i].label == label for i, (_, label) in enumerate(expected))

    def test_keys_both_ways(self, pack: Pack) -> None:
        keys = list(pack.keys())
        assert len(set(keys)) == len(keys) == len(pack)
        for i, key in enumerate(keys):
            assert pack.key(i) == key
            assert pack.index_of(key) == i
            assert key in pack
            assert pack.get(key) == pack[i]
        for missing in ("", "cat", "cat/a.jpg", "zzz/none", "cat/a/"):
            assert missing not in pack
            with pytest.raises(KeyError):
                pack.get(missing)

    def test_out_of_range_index(self, pack: Pack) -> None:
        with pytest.raises(IndexError):
            pack[len(pack)]
        with pytest.raises(IndexError):
            pack[-len(pack) - 1]
        assert pack[-1] == pack[len(pack) - 1]

    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(data=st.data())
    def test_random_access_matches_source(
        self, pack: Pack, source: Path, data: st.DataObject
    ) -> None:
        _, expected = imagefolder_order(source)
        n = len(expected)
        indices = data.draw(st.lists(st.integers(min_value=-n, max_value=n - 1), max_size=30))
        for i in indices:
            rel, label = expected[i]
            sample = pack[i]
            assert sample.data == (source / rel).read_bytes()
            assert pack.read(i) == sample.data
            assert sample.label == label

    @pytest.mark.parametrize("block", [4096, 5])
    def test_sequential_and_random_agree(
        self, pack: Pack, block: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("packer.pack._CHUNK", block)  # small blocks: every boundary is crossed
        sequential = list(pack)
        assert sequential == [pack[i] for i in range(len(pack))]
        assert sequential[::-1] == [pack[i] for i in reversed(range(len(pack)))]
        assert list(pack.iter_raw()) == [(s.data, s.label) for s in sequential]

    # -- determinism ------------------------------------------------------------------------

    def test_two_converts_are_identical(
        self, source: Path, backend: BackendSpec, tmp_path: Path, pack_path: Path
    ) -> None:
        again = self._convert(source, tmp_path / "again.pack", backend)
        assert tree_digest(again) == tree_digest(pack_path)

    def test_workers_do_not_change_output(
        self, source: Path, backend: BackendSpec, tmp_path: Path, pack_path: Path
    ) -> None:
        parallel = self._convert(source, tmp_path / "parallel.pack", backend, workers=2)
        assert tree_digest(parallel) == tree_digest(pack_path)

    # -- processes --------------------------------------------------------------------------

    def test_pickle_before_and_after_first_read(self, pack_path: Path) -> None:
        fresh = open_pack(pack_path)
        clone = pickle.loads(pickle.dumps(fresh))
        assert clone[0] == fresh[0]
        used = pickle.loads(pickle.dumps(fresh))  # after fresh has opened its data files
        assert [used[i] for i in range(len(used))] == list(fresh)
        assert len(pickle.dumps(fresh)) < 1024  # a path, not the data or the index
        fresh.close()

    @pytest.mark.parametrize("method", ["fork", "spawn"])
    def test_reading_from_worker_processes(self, pack: Pack, method: str) -> None:
        n = len(pack)
        pack[0]  # the parent has opened its handles before forking
        chunks = [list(range(k, n, 3)) for k in range(3)]
        ctx = multiprocessing.get_context(method)
        with ctx.Pool(2) as pool:
            results = pool.starmap(read_crcs, [(pack, c) for c in chunks])
        for chunk, crcs in zip(chunks, results, strict=True):
            assert crcs == [zlib.crc32(pack[i].data) for i in chunk]

    # -- damage is detected -----------------------------------------------------------------

    def _copy(self, pack_path: Path, tmp_path: Path) -> Path:
        import shutil

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
        assert not partial_path(dst).exists()
        assert calls["n"] == 10
        assert list(tmp_path.iterdir()) == []

    def test_bad_image_fail_and_skip(
        self, source: Path, backend: BackendSpec, tmp_path: Path
    ) -> None:
        import shutil

        tree = tmp_path / "tree"
        shutil.copytree(source, tree)
        bad = tree / "cat" / "a.jpg"
        bad.write_bytes(bad.read_bytes()[:-200])  # truncated download
        (tree / "dog" / "fake.jpg").write_text("<html>404</html>")
        with pytest.raises(SourceError, match=r"a\.jpg"):
            self._convert(tree, tmp_path / "fail.pack", backend)
        assert not (tmp_path / "fail.pack").exists()
        assert not partial_path(tmp_path / "fail.pack").exists()
        self._convert(tree, tmp_path / "skip.pack", backend, on_error="skip")
        with open_pack(tmp_path / "skip.pack") as p:
            keys = set(p.keys())
            assert "cat/a" not in keys and "dog/fake" not in keys
            assert sorted(s["path"] for s in p.manifest.skipped) == ["cat/a.jpg", "dog/fake.jpg"]
            assert len(p) == len(imagefolder_order(source)[1]) - 1
