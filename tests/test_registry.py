"""Backends come from the built-in table and the packer.backends entry-point group."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from packer import errors
from packer.api import list_formats
from packer.backends.registry import BUILTIN_BACKENDS, backend_sources, get_backend_class
from packer.cli.main import app
from packer.errors import PluginError, UsageError


def _fake_distribution(
    root: Path, dist: str, entry: str, module: str | None = None, source: str = ""
) -> None:
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[packer.backends]\n{entry}\n")
    if module:
        (root / f"{module}.py").write_text(source)


def test_builtins_are_listed_without_importing_them() -> None:
    names = [s.name for s in backend_sources()]
    assert names[: len(BUILTIN_BACKENDS)] == sorted(BUILTIN_BACKENDS)
    assert all(s.origin == "built-in" for s in backend_sources()[: len(BUILTIN_BACKENDS)])


def test_plugin_is_discovered_through_entry_points() -> None:
    cls = get_backend_class("dummy")
    assert cls.__module__ == "packer_dummy" and cls.name == "dummy"


def test_broken_plugin_gives_one_line_and_does_not_break_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_distribution(
        tmp_path,
        "packer-broken",
        "broken = broken_mod:Backend",
        "broken_mod",
        "raise ImportError('libfoo.so missing')\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(PluginError, match="packer-broken") as info:
        get_backend_class("broken")
    assert "libfoo.so missing" in str(info.value) and "\n" not in str(info.value)
    listed = {f["name"]: f for f in list_formats()}
    assert listed["broken"]["error"] and listed["tar"]["error"] is None
    runner = CliRunner()
    assert runner.invoke(app, ["--help"]).exit_code == 0
    result = runner.invoke(app, ["formats"])
    assert result.exit_code == 0 and "broken" in result.stdout
    result = runner.invoke(app, ["convert", str(tmp_path), str(tmp_path / "x"), "-f", "broken"])
    assert result.exit_code == errors.EXIT_PLUGIN and "libfoo.so missing" in result.stderr


def test_plugin_cannot_shadow_a_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_distribution(tmp_path, "packer-evil", "tar = packer_dummy:DummyBackend")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert get_backend_class("tar").__module__ == "packer.backends.tar"


def test_entry_point_name_must_match_backend_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_distribution(tmp_path, "packer-misnamed", "other = packer_dummy:DummyBackend")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(PluginError, match="must agree"):
        get_backend_class("other")


def test_unknown_format_lists_the_known_ones() -> None:
    with pytest.raises(UsageError, match="available formats: .*tar"):
        get_backend_class("parquetish")


def test_conformance_suite_runs_as_a_pytest_plugin(tmp_path: Path) -> None:
    """A plugin author's whole test setup: `pytest --pyargs packer.testing.suite --packer-backend
    NAME`, found through the `pytest11` entry point, run outside this repository's config."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs",
         "packer.testing.suite", "--packer-backend", "dummy"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert " passed" in last and "skipped" not in last and "failed" not in last
