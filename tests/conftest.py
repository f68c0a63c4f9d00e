from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from packer.demo import make_demo_tree

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
