"""The ``packer`` pytest plugin (entry point ``pytest11``): options to run the conformance suite
on any installed backend, ``pytest --pyargs packer.testing.suite --packer-backend NAME``."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("packer", "packer backend conformance")
    group.addoption(
        "--packer-backend",
        action="append",
        default=[],
        metavar="NAME",
        help="run packer.testing.suite on this backend (repeatable)",
    )
    group.addoption(
        "--packer-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a backend option for --packer-backend (repeatable)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: longer tests (spawned worker processes)")
    config.addinivalue_line("markers", "torch: needs torch installed")
