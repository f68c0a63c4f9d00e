"""Every registered backend, built-in or plugin, runs the one shared conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from packer.backends.registry import BUILTIN_BACKENDS, backend_names
from packer.testing import BackendConformance, BackendSpec

SPECS = [BackendSpec(name) for name in backend_names()] + [
    BackendSpec("zip", {"compression": "deflate"}),
    BackendSpec("tar", {"labels": "none"}),
    BackendSpec("hdf5", {"compression": "gzip"}),  # pixel packs then go through h5py chunks
    BackendSpec("parquet", {"row_group_rows": 2}),  # reads cross row groups inside a shard
    BackendSpec("arrow", {"batch_rows": 2}),  # several record batches per shard
    BackendSpec("arrow", {"layout": "hf"}),  # raw ranges into the image struct's bytes
    BackendSpec("parquet", {"layout": "hf"}),
]


def test_every_backend_is_covered() -> None:
    """Checked against sources the SPECS list is not built from: the built-in table and the test
    plugin's own entry-point file."""
    entry_points = (
        Path(__file__).parent / "plugins" / "packer_dummy-0.1.dist-info" / "entry_points.txt"
    )
    plugins = {
        line.split("=")[0].strip() for line in entry_points.read_text().splitlines() if "=" in line
    }
    assert {s.name for s in SPECS} == set(BUILTIN_BACKENDS) | plugins


class TestConformance(BackendConformance):
    @pytest.fixture(
        scope="class",
        params=SPECS,
        ids=[s.name + "".join(f"-{k}={v}" for k, v in s.options.items()) for s in SPECS],
    )
    @classmethod
    def backend(cls, request: pytest.FixtureRequest) -> BackendSpec:
        return request.param  # type: ignore[no-any-return]
