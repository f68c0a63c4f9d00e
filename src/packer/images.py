"""Checks that a file really is a complete image, at two costs.

``quick`` (the convert default) looks only at the first and last bytes: a known image signature
and, for formats that have one, the end marker (JPEG EOI, PNG IEND, GIF trailer) or the declared
size (BMP, WebP). It costs about a microsecond and catches empty files, text or HTML saved as .jpg,
and truncated downloads. ``full`` decodes every pixel with Pillow (what ``pack verify --deep``
does): slower, and also catches damage in the middle of a file.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

VALIDATE_MODES = ("none", "quick", "full")

_TAIL = 4096  # end markers may be followed by a little padding; look this far back


def quick_check(data: bytes) -> str | None:
    """``None`` when ``data`` looks like a complete image, else the reason it does not."""
    if not data:
        return "empty file (0 bytes)"
    tail = data[-_TAIL:]
    if data.startswith(b"\xff\xd8\xff"):
        return None if b"\xff\xd9" in tail else "truncated JPEG (no end-of-image marker)"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None if b"IEND" in tail[-64:] else "truncated PNG (no IEND chunk)"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return None if b"\x3b" in tail[-16:] else "truncated GIF (no trailer)"
    if data.startswith(b"BM") and len(data) >= 6:
        declared = int.from_bytes(data[2:6], "little")
        return None if declared <= len(data) else f"truncated BMP ({len(data)} of {declared} bytes)"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        declared = int.from_bytes(data[4:8], "little") + 8
        return (
            None if declared <= len(data) else f"truncated WebP ({len(data)} of {declared} bytes)"
        )
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return None
    if len(data) >= 2 and data[0:1] == b"P" and data[1:2] in b"123456":
        return None
    return "not an image (unrecognised file signature)"


def full_check(data: bytes) -> str | None:
    """Decode the whole image; ``None`` if it decodes, else why not."""
    reason = quick_check(data)
    if reason is not None and reason.startswith(("empty", "not an image")):
        return reason
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.load()
    except Exception as exc:  # Pillow raises many types for bad data
        return f"does not decode ({type(exc).__name__}: {exc})"
    return None


def check_image(data: bytes, mode: str) -> str | None:
    if mode == "quick":
        return quick_check(data)
    if mode == "full":
        return full_check(data)
    return None
