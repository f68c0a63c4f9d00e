"""packer: turn folder trees of many small images into a few large packed files, read them fast."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Pack", "Sample", "__version__", "convert", "inspect_pack", "open_pack", "verify_pack"]

if TYPE_CHECKING:
    from packer.api import convert, inspect_pack, open_pack, verify_pack
    from packer.pack import Pack, Sample


def __getattr__(name: str) -> Any:
    # The public API is imported on first use, so that `import packer.cli` (and `pack --help`)
    # stays fast: a command loads only what it needs.
    if name in ("convert", "inspect_pack", "open_pack", "verify_pack"):
        from packer import api

        return getattr(api, name)
    if name in ("Pack", "Sample"):
        from packer import pack

        return getattr(pack, name)
    raise AttributeError(f"module 'packer' has no attribute {name!r}")
