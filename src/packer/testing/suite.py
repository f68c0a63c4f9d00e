"""The conformance suite as a test module, for ``pytest --pyargs packer.testing.suite
--packer-backend NAME``: one class run once per ``--packer-backend``."""

from __future__ import annotations

import pytest

from packer.testing.conformance import BackendConformance
from packer.testing.spec import BackendSpec


def _specs(config: pytest.Config) -> list[BackendSpec]:
    names: list[str] = config.getoption("packer_backend") or []
    pairs = [item.partition("=") for item in config.getoption("packer_option") or []]
    options = {key.strip(): value.strip() for key, _, value in pairs}
    return [BackendSpec(name, dict(options)) for name in names]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        specs = _specs(metafunc.config)  # none: pytest reports the tests as skipped
        metafunc.parametrize("backend", specs, ids=[s.name for s in specs], scope="class")


class TestBackendConformance(BackendConformance):
    """The whole suite, for each ``--packer-backend``."""
