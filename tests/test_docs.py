"""The docs cover every command and every built-in format, and the README gives the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from packer.backends.registry import BUILTIN_BACKENDS
from packer.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _commands() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", _commands())
def test_every_command_is_documented(command: str) -> None:
    assert re.search(rf"^## pack {command}$", (DOCS / "commands.md").read_text(), re.MULTILINE)


@pytest.mark.parametrize("backend", sorted(BUILTIN_BACKENDS))
def test_every_builtin_backend_has_a_format_page(backend: str) -> None:
    page = DOCS / "formats" / f"{backend}.md"
    assert page.is_file()
    assert f"formats/{backend}.md" in (ROOT / "mkdocs.yml").read_text()
    text = page.read_text()
    assert "```text" in text, "a format page shows the on-disk layout"


def test_every_docs_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in DOCS.rglob("*.md"):
        assert page.relative_to(DOCS).as_posix() in nav


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```bash", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make lint" in ci
