from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from factories import TreeFactory
from packer.demo import make_demo_tree
from packer.testing import make_edge_tree

# A fake installed distribution (zarr's trick): its dist-info on sys.path is found by the real
# importlib.metadata entry-point machinery, so plugin discovery is tested without installing anything.
PLUGINS = Path(__file__).parent / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))
# ... and in the Python subprocesses tests start (pack bench's open probe, CLI runs).
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")])
)


@pytest.fixture(scope="session")
def demo_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_tree(tmp_path_factory.mktemp("demo") / "tree", per_class=12, size=32)


@pytest.fixture(scope="session")
def demo_trees(tmp_path_factory: pytest.TempPathFactory) -> TreeFactory:
    """``demo_trees(per_class=N, size=S)``: a demo tree built once per shape for the whole
    session and shared by every module that asks for it, so it is read-only; a test that changes
    files works on ``copy_tree(...)`` of it."""
    made: dict[tuple[int, int], Path] = {}

    def get(*, per_class: int, size: int) -> Path:
        if (per_class, size) not in made:
            folder = tmp_path_factory.mktemp(f"demo-{per_class}x{size}")
            made[per_class, size] = make_demo_tree(folder / "tree", per_class=per_class, size=size)
        return made[per_class, size]

    return get


@pytest.fixture(scope="session")
def edge_trees(tmp_path_factory: pytest.TempPathFactory) -> TreeFactory:
    """``edge_trees(extra_per_class=N)``: packer.testing's edge-case tree (symlinks, junk, names
    that are not UTF-8), once per shape for the session; read-only like ``demo_trees``."""
    made: dict[int, Path] = {}

    def get(*, extra_per_class: int = 0) -> Path:
        if extra_per_class not in made:
            folder = tmp_path_factory.mktemp(f"edge-{extra_per_class}")
            made[extra_per_class] = make_edge_tree(folder / "tree", extra_per_class=extra_per_class)
        return made[extra_per_class]

    return get
