"""packer: turn folder trees of many small images into a few large packed files, read them fast."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packer._version import __version__

__all__ = [
    "Pack",
    "Sample",
    "__version__",
    "convert",
    "convert_samples",
    "extract",
    "inspect_pack",
    "list_formats",
    "open_pack",
    "status",
    "verify_pack",
]

# Reading is imported eagerly, so that `import packer` pays numpy's import once and open_pack()
# itself costs about a millisecond. Converting, verifying and the CLI's needs load on first use.
from packer.read.open import open_pack
from packer.read.pack import Pack, Sample

if TYPE_CHECKING:
    from packer.api import (
        convert,
        convert_samples,
        extract,
        inspect_pack,
        list_formats,
        status,
        verify_pack,
    )

_FROM_API = (
    "convert",
    "convert_samples",
    "extract",
    "inspect_pack",
    "list_formats",
    "status",
    "verify_pack",
)


def __getattr__(name: str) -> Any:
    """The rest of :mod:`packer.api`, loaded on first use (``import packer`` stays light)."""
    if name in _FROM_API:
        from packer import api

        return getattr(api, name)
    raise AttributeError(f"module 'packer' has no attribute {name!r}")
