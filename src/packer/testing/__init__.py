"""The backend conformance suite, shipped so that plugin authors can run it on their own backend.

Every built-in backend runs it (``tests/test_conformance.py``); a third-party backend is done when
it passes too. Install ``packer[testing]``, then either subclass it::

    from packer.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backend_name = "myformat"

or run it on an installed backend without writing a test file (the ``packer`` pytest plugin)::

    pytest --pyargs packer.testing.suite --packer-backend myformat [--packer-option key=value]
"""

from __future__ import annotations

from packer.testing.conformance import BackendConformance, read_crcs
from packer.testing.spec import BackendSpec
from packer.testing.trees import (
    EDGE_FILES,
    EMPTY_CLASSES,
    IGNORED_FILES,
    imagefolder_order,
    make_edge_tree,
    tree_digest,
)

__all__ = [
    "EDGE_FILES",
    "EMPTY_CLASSES",
    "IGNORED_FILES",
    "BackendConformance",
    "BackendSpec",
    "imagefolder_order",
    "make_edge_tree",
    "read_crcs",
    "tree_digest",
]
