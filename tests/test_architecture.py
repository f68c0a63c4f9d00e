"""The house keeps its shape: layered subpackages without import cycles (lazy imports count),
modules and functions small enough to read in one sitting, a front door that always works, and
an architecture page that names every room. The layer contracts themselves are import-linter's
(``make lint``)."""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "packer"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 100
MAX_TOP_LEVEL_MODULES = 12


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}
PACKAGES = sorted(p.parent.name for p in SRC.glob("*/__init__.py"))


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, in functions too, but not under ``if TYPE_CHECKING``."""
    for node in ast.iter_child_nodes(tree):
        if _type_checking_only(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def imported_modules(name: str) -> set[str]:
    """The packer modules ``name`` imports (a ``from a import b`` of a submodule b is a.b)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imported_modules(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_lazy_imports_included() -> None:
    assert len(GRAPH) > 80 and sum(map(len, GRAPH.values())) > 300  # the graph was really read
    assert cycles(GRAPH) == []


def test_few_modules_at_the_top() -> None:
    top = sorted(p.name for p in SRC.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_functions_are_short(name: str) -> None:
    source = MODULES[name].read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{name} is over {MAX_MODULE_LINES} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{name}.{node.name} is {length} lines"


def test_every_package_says_what_it_holds() -> None:
    for package in PACKAGES:
        doc = ast.get_docstring(ast.parse((SRC / package / "__init__.py").read_text()))
        assert doc and len(doc) > 80, f"packer.{package} needs a docstring saying what it holds"


def test_the_architecture_page_names_every_subpackage() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    for package in PACKAGES:
        assert f"`packer.{package}`" in page or f"`{package}/`" in page, package
    for layer in ("cli", "api", "conversion", "read", "format", "backends", "storage"):
        assert f"`{layer}" in page


FRONT_DOOR = """
import sys, types
from pathlib import Path
import packer.api, packer
src, out = Path(sys.argv[1]), Path(sys.argv[2])
(src / "a").mkdir(parents=True)
(src / "a" / "x.bin").write_bytes(b"not an image")
from PIL import Image
Image.new("RGB", (4, 4)).save(src / "a" / "y.png")
packer.convert(src, out / "p.pack", format="zip", extensions=".png")
report = packer.extract(out / "p.pack", out / "tree")
assert sorted(p.name for p in (out / "tree").rglob("*.png")) == ["y.png"], report
modules = [n for n in packer.__all__ if isinstance(getattr(packer, n), types.ModuleType)]
assert modules == [], modules
print("ok")
"""


@pytest.mark.parametrize("first", ["packer.api", "packer", "packer.cli.main", "packer.pytorch"])
def test_the_front_door_works_whatever_was_imported_first(first: str, tmp_path: Path) -> None:
    """docs/api.md's example: ``packer.convert`` then ``packer.extract`` after ``packer.api``
    (once raised ``'module' object is not callable``), in a fresh interpreter each time."""
    if first == "packer.pytorch":
        pytest.importorskip("torch")
    code = f"import {first}\n{FRONT_DOOR}"
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "src"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_packer_and_api_give_the_same_objects() -> None:
    import packer
    import packer.api as api

    for name in packer.__all__:
        value = getattr(packer, name)
        assert not isinstance(value, types.ModuleType), name
        if name != "__version__":
            assert value is getattr(api, name), name
