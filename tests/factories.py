"""What tests share besides fixtures: the tree factories' type and a private copy of a shared tree
(the ``demo_trees`` and ``edge_trees`` fixtures are in conftest.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

TreeFactory = Callable[..., Path]


def copy_tree(tree: Path, dst: Path) -> Path:
    """A private, changeable copy of a shared tree (links copied as links, mtimes kept)."""
    shutil.copytree(tree, dst, symlinks=True)
    return dst
