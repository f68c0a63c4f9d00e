"""packer: turn folder trees of many small images into a few large packed files, read them fast."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Pack", "Sample", "__version__", "convert", "inspect_pack", "open_pack", "verify_pack"]

# Reading is imported eagerly, so that `import packer` pays numpy's import once and open_pack()
# itself costs about a millisecond. Converting, verifying and the CLI's needs load on first use.
from packer.pack import Pack, Sample, open_pack

if TYPE_CHECKING:
    from packer.api import convert, inspect_pack, verify_pack


def __getattr__(name: str) -> Any:
    if name in ("convert", "inspect_pack", "verify_pack"):
        from packer import api

        return getattr(api, name)
    raise AttributeError(f"module 'packer' has no attribute {name!r}")
