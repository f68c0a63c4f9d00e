"""Every registered backend, built-in or plugin, runs the one shared conformance suite."""

from __future__ import annotations

import pytest

from packer.registry import backend_names
from packer.testing import BackendConformance, BackendSpec

SPECS = [BackendSpec(name) for name in backend_names()] + [
    BackendSpec("zip", {"compression": "deflate"}),
    BackendSpec("tar", {"labels": "none"}),
    BackendSpec("hdf5", {"compression": "gzip"}),  # pixel packs then go through h5py chunks
]


def test_every_backend_is_covered() -> None:
    assert {"tar", "zip", "dummy"} <= {s.name for s in SPECS}


class TestConformance(BackendConformance):
    @pytest.fixture(
        scope="class",
        params=SPECS,
        ids=[s.name + "".join(f"-{k}={v}" for k, v in s.options.items()) for s in SPECS],
    )
    @classmethod
    def backend(cls, request: pytest.FixtureRequest) -> BackendSpec:
        return request.param  # type: ignore[no-any-return]
