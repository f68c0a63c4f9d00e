"""Checks that a file really is a complete, sane image, at two costs.

``quick`` (the convert default) reads headers and trailers, never pixels: a known signature, the
header's width and height (zero, negative or over ``--max-pixels`` -> refused without decoding, so
a decompression bomb costs nothing), a few header fields a decoder would refuse (PNG compression and
palette size), and the evidence that the file is complete: the JPEG end-of-image marker after the
first scan, the PNG IEND chunk, BMP/PNM pixel bytes, WebP's RIFF size, TIFF strips. Data *after*
the end (phone cameras pad JPEGs with zeros, MPF/Ultra HDR append a second JPEG) is fine. Where the
bytes leave the question open (a GIF without its trailer, a PNG cut exactly between chunks, an RLE
BMP, a format quick does not parse), the file is decoded instead. Rule, tested against Pillow:
``quick`` and ``full`` never reject a file that Pillow decodes completely, except a PNG header field
the PNG spec forbids (libpng refuses it; Pillow ignores it).

``full`` decodes every pixel of every frame with Pillow (what ``pack verify --deep`` does).
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator

from packer.images.headers import (
    EXTENSION_FORMATS,
    FORMAT_SIGNATURES,
    TruncatedError,
    UndecidedError,
    check_complete,
    header_size,
    read_header,
    sniff_format,
)
from packer.images.opening import PixelLimitError, bomb_reason, frames, open_image

# Pillow is imported only where an image is decoded: the quick check needs none of it.

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "EXTENSION_FORMATS",
    "FORMAT_SIGNATURES",
    "VALIDATE_MODES",
    "UnscalableImageError",
    "bomb_reason",
    "check_image",
    "decode_error_reason",
    "full_check",
    "header_size",
    "own_process",
    "silence_libtiff",
    "quick_check",
    "quiet_decoder",
    "sniff_format",
    "validated_extensions",
]

VALIDATE_MODES = ("none", "quick", "full")


#: Pillow's own limit; larger images are refused unless --max-pixels raises it.
DEFAULT_MAX_PIXELS = 89_478_485


class UnscalableImageError(ValueError):
    """A transform cannot bring these pixels to 8 bits without guessing (the message says why)."""


def quick_check(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """``None`` when ``data`` looks like a complete image, else the reason it does not.

    Decodes only when the header and trailer bytes cannot tell (see the module docstring).
    """
    if not data:
        return "empty file (0 bytes)"
    fmt, size, scan = read_header(data)
    if fmt is None:
        return _decode_check(data, max_pixels, all_frames=False)
    if size is not None:
        width, height = size
        if width <= 0 or height <= 0:
            return f"invalid {fmt} header (width {width}, height {height})"
        if width * height > max_pixels:
            return bomb_reason(width, height, max_pixels)
    try:
        check_complete(data, fmt, scan)
    except TruncatedError as exc:
        return str(exc)
    except UndecidedError as exc:
        reason = _decode_check(data, max_pixels, all_frames=False)
        return str(exc) if reason is not None and str(exc) else reason
    return None


def full_check(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Decode every frame of the image; ``None`` if it decodes, else why not."""
    reason = quick_check(data, max_pixels)
    if reason is not None:
        return reason
    return _decode_check(data, max_pixels, all_frames=True)


def _decode_check(data: bytes, max_pixels: int, *, all_frames: bool) -> str | None:
    from PIL import Image

    try:
        with quiet_decoder(), open_image(data, max_pixels) as im:
            for frame in frames(im, max_pixels) if all_frames else [im]:
                frame.load()
    except PixelLimitError as exc:
        return str(exc)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # the caller's limit
        return f"decompression bomb: over Pillow's pixel limit ({Image.MAX_IMAGE_PIXELS:,})"
    except Exception as exc:  # Pillow raises many types for bad data
        return decode_error_reason(exc)
    return None


def decode_error_reason(exc: BaseException) -> str:
    """Pillow's message for an undecodable file, without the ``<_io.BytesIO object at 0x...>``."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, (UnscalableImageError, PixelLimitError)):
        return str(exc)
    if isinstance(exc, UnidentifiedImageError):
        return "not an image (Pillow cannot identify it)"
    text = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc))
    return f"does not decode ({type(exc).__name__}: {text})"


_SINKS: list[list[str]] = []  # open quiet_decoder blocks, innermost last


@contextlib.contextmanager
def quiet_decoder() -> Iterator[list[str]]:
    """Collect the warnings a decoder raises (invalid APNG, corrupt EXIF...) instead of printing them.

    Yields the list the messages are appended to, so the caller can report them with the sample's
    key; a block inside another hands its messages on to the outer one. (libtiff prints its own
    warnings from C: see :func:`silence_libtiff`.) ``warnings.catch_warnings`` is process-wide
    in Python 3.11, so this is for packer's own validation (convert, verify), one thread at a
    time; decoding for training (transforms, datasets) does not use it.
    """
    found: list[str] = []
    _SINKS.append(found)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield found
            finally:
                found.extend(str(w.message) for w in caught)
    finally:
        _SINKS.pop()
        if _SINKS:
            _SINKS[-1].extend(found)


def own_process() -> None:
    """Decoding settings for a process packer owns (the ``pack`` command, packer's own workers),
    never called by a library function: libtiff's stderr warnings off (:func:`silence_libtiff`),
    and Pillow's global pixel limit off, because every open here checks the limit it is given
    first (:func:`packer.images.opening.open_image`, each frame too). In a caller's process the
    caller's limit stays, and Pillow's plugins that check it themselves (WebP, GIF and MPO frames,
    TIFF tiles) refuse what it refuses.
    """
    from PIL import Image

    silence_libtiff()
    Image.MAX_IMAGE_PIXELS = None


_LIBTIFF_SILENCED = False


def silence_libtiff() -> None:
    """Turn off libtiff's stderr warning handler in the libtiff that Pillow loaded.

    Without this, ``verify --deep`` on a TIFF dataset prints one line per unknown tag straight from
    C (hundreds of lines). Errors still reach Pillow and become exceptions. This changes the whole
    process, so only the ``pack`` command and packer's own worker processes call it.
    """
    global _LIBTIFF_SILENCED
    if _LIBTIFF_SILENCED:
        return
    _LIBTIFF_SILENCED = True
    import ctypes

    from PIL import Image  # loads Pillow's core and, with it, its libtiff

    del Image
    with contextlib.suppress(OSError), open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "libtiff" in line and "/" in line}
        for path in paths:
            with contextlib.suppress(OSError, AttributeError):
                lib = ctypes.CDLL(path)
                lib.TIFFSetWarningHandler.restype = ctypes.c_void_p
                lib.TIFFSetWarningHandler.argtypes = [ctypes.c_void_p]
                lib.TIFFSetWarningHandler(None)


def validated_extensions(wanted: frozenset[str] | None) -> frozenset[str]:
    """Extensions of files that are validated as images: ImageFolder's list plus every format
    Pillow can open (``--extensions +avif``). Other files (``.npy``, ``.wav``) are packed as bytes.
    Pillow's plugin table is only consulted (imported) when ``wanted`` goes beyond the known list."""
    known = frozenset(EXTENSION_FORMATS)
    if wanted is not None and wanted <= known:
        return known
    from PIL import Image, ImageFile

    Image.init()

    def real_decoder(fmt: str) -> bool:
        opener: object = Image.OPEN[fmt][0]
        return not (isinstance(opener, type) and issubclass(opener, ImageFile.StubImageFile))

    readable = {
        ext.lstrip(".").lower()
        for ext, fmt in Image.registered_extensions().items()
        if fmt in Image.OPEN and real_decoder(fmt)
    }
    return frozenset(readable) | known


def check_image(data: bytes, mode: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    if mode == "quick":
        return quick_check(data, max_pixels)
    if mode == "full":
        return full_check(data, max_pixels)
    return None
