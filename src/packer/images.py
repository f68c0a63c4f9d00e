"""Checks that a file really is a complete, sane image, at two costs.

``quick`` (the convert default) looks only at a few header and trailer bytes: a known image
signature; for formats that have one, the end marker (JPEG EOI, PNG IEND, GIF trailer) or the
declared size (BMP, WebP); and the pixel count from the header (PNG, JPEG, GIF, BMP, WebP), so a
decompression bomb is refused without decoding it. It costs a few microseconds and catches empty
files, text or HTML saved as .jpg, truncated downloads and bombs. ``full`` also decodes every pixel
with Pillow (what ``pack verify --deep`` does): slower, and it catches damage inside a file too.
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
from collections.abc import Iterator

# Pillow is imported only where an image is decoded: the quick check needs none of it.

VALIDATE_MODES = ("none", "quick", "full")
#: Pillow's own limit; larger images are refused unless --max-pixels raises it.
DEFAULT_MAX_PIXELS = 89_478_485

_TAIL = 4096  # end markers may be followed by a little padding; look this far back
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from the header of a PNG, JPEG, GIF, BMP or WebP; None if unknown."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return w, h
        if data.startswith((b"GIF87a", b"GIF89a")):
            w, h = struct.unpack("<HH", data[6:10])
            return w, h
        if data.startswith(b"BM"):
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(
                    data[27:30], "little"
                )
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if data.startswith(b"\xff\xd8"):
            pos = 2
            while pos + 9 < len(data):  # walk the marker segments up to the frame header
                if data[pos] != 0xFF:
                    return None
                marker = data[pos + 1]
                if marker in _JPEG_SOF:
                    h, w = struct.unpack(">HH", data[pos + 5 : pos + 9])
                    return w, h
                if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01 or marker == 0xFF:
                    pos += 1 if marker == 0xFF else 2
                    continue
                pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    except struct.error:
        return None
    return None


def quick_check(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """``None`` when ``data`` looks like a complete image, else the reason it does not."""
    if not data:
        return "empty file (0 bytes)"
    tail = data[-_TAIL:]
    reason: str | None = "not an image (unrecognised file signature)"
    if data.startswith(b"\xff\xd8\xff"):
        reason = None if b"\xff\xd9" in tail else "truncated JPEG (no end-of-image marker)"
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        reason = None if b"IEND" in tail[-64:] else "truncated PNG (no IEND chunk)"
    elif data.startswith((b"GIF87a", b"GIF89a")):
        reason = None if b"\x3b" in tail[-16:] else "truncated GIF (no trailer)"
    elif data.startswith(b"BM") and len(data) >= 6:
        declared = int.from_bytes(data[2:6], "little")
        reason = (
            None if declared <= len(data) else f"truncated BMP ({len(data)} of {declared} bytes)"
        )
    elif data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        declared = int.from_bytes(data[4:8], "little") + 8
        reason = (
            None if declared <= len(data) else f"truncated WebP ({len(data)} of {declared} bytes)"
        )
    elif data.startswith((b"II*\x00", b"MM\x00*")) or (
        len(data) >= 2 and data[0:1] == b"P" and data[1:2] in b"123456"
    ):
        reason = None
    if reason is None:
        size = header_size(data)
        if size is not None and size[0] * size[1] > max_pixels:
            return _bomb(size[0], size[1], max_pixels)
    return reason


def _bomb(width: int, height: int, max_pixels: int) -> str:
    return (
        f"decompression bomb: {width} x {height} = {width * height:,} pixels is over the "
        f"{max_pixels:,} limit (raise it with --max-pixels if the image is genuine)"
    )


def full_check(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Decode the whole image; ``None`` if it decodes, else why not."""
    reason = quick_check(data, max_pixels)
    if reason is not None and reason.startswith(("empty", "not an image", "decompression bomb")):
        return reason
    from PIL import Image

    try:
        with pixel_limit(max_pixels), Image.open(io.BytesIO(data)) as im:
            im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"decompression bomb ({exc}); raise --max-pixels if the image is genuine"
    except Exception as exc:  # Pillow raises many types for bad data
        return f"does not decode ({type(exc).__name__}: {exc})"
    return None


@contextlib.contextmanager
def pixel_limit(max_pixels: int) -> Iterator[None]:
    """Within the block, Pillow refuses images over ``max_pixels`` (its bomb warning is an error)."""
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def check_image(data: bytes, mode: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    if mode == "quick":
        return quick_check(data, max_pixels)
    if mode == "full":
        return full_check(data, max_pixels)
    return None
