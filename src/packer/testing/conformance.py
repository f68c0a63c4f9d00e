"""The backend conformance suite: reading, keys, order, determinism, processes (and, through
:class:`~packer.testing.safety.SafetyChecks`, damage, atomicity and hostile input).

Ground truth is always the source tree read with plain ``open()``, never the writer's own output.
"""

from __future__ import annotations

import multiprocessing
import pickle
import zlib
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packer.api import Pack, convert, open_pack
from packer.testing.safety import SafetyChecks
from packer.testing.spec import BackendSpec
from packer.testing.trees import imagefolder_order, make_edge_tree, tree_digest


def read_crcs(pack: Pack, indices: list[int]) -> list[int]:
    """Worker-side helper (module level so spawn can import it)."""
    return [zlib.crc32(pack[i].data) for i in indices]


class BackendConformance(SafetyChecks):
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
        kwargs.setdefault("workers", 1)  # in this process, where a test's monkeypatching applies
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
            assert sample.file_name == rel
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
        monkeypatch.setattr(pack, "block_rows", block)  # small blocks: every boundary is crossed
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

    # spawn starts a fresh interpreter per worker (~1 s): marked slow, run by `make test`
    @pytest.mark.parametrize("method", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
    def test_reading_from_worker_processes(self, pack: Pack, method: str) -> None:
        n = len(pack)
        pack[0]  # the parent has opened its handles before forking
        chunks = [list(range(k, n, 3)) for k in range(3)]
        ctx = multiprocessing.get_context(method)
        with ctx.Pool(2) as pool:
            results = pool.starmap(read_crcs, [(pack, c) for c in chunks])
        for chunk, crcs in zip(chunks, results, strict=True):
            assert crcs == [zlib.crc32(pack[i].data) for i in chunk]
