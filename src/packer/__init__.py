"""packer: turn folder trees of many small images into a few large packed files, read them fast."""

from __future__ import annotations

__version__ = "0.1.0"

from packer.api import convert, inspect_pack, open_pack, verify_pack
from packer.pack import Pack, Sample

__all__ = ["Pack", "Sample", "__version__", "convert", "inspect_pack", "open_pack", "verify_pack"]
