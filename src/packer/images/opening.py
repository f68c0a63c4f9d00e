"""Opening an image under a pixel limit passed in, leaving Pillow's process-wide one alone.

``PIL.Image.MAX_IMAGE_PIXELS`` belongs to the program that imported Pillow: packer never sets it
(setting and restoring it around a decode changes it for every other thread meanwhile). Instead
each open checks the image's size against the limit it is given before a pixel is decoded. A
format is opened through Pillow's own plugins as ``Image.open`` opens it, minus that global
check, so ``--max-pixels`` above Pillow's default works and no warning is raised or filtered.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from packer.images.headers import sniff_format

if TYPE_CHECKING:
    from PIL import Image

#: packer's names for the formats it sniffs -> Pillow's plugin ids
_PILLOW_IDS = {"PNM": "PPM"}


class PixelLimitError(ValueError):
    """An image over the pixel limit: refused before decoding (the message says how to allow it)."""


def bomb_reason(width: int, height: int, max_pixels: int) -> str:
    """The one message for an image over the pixel limit, whoever finds it."""
    return (
        f"decompression bomb: {width} x {height} = {width * height:,} pixels is over the "
        f"{max_pixels:,} pixel limit (raise it with --max-pixels if the image is genuine)"
    )


def check_pixels(im: Image.Image, max_pixels: int) -> None:
    """Raise :class:`PixelLimitError` if ``im`` (an image or one frame of it) is over the limit."""
    if im.width * im.height > max_pixels:
        raise PixelLimitError(bomb_reason(im.width, im.height, max_pixels))


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """``Image.open`` of ``data`` (lazy: nothing decoded yet), refused with
    :class:`PixelLimitError` when its size is over ``max_pixels``."""
    im = open_unchecked(data)
    try:
        check_pixels(im, max_pixels)
    except PixelLimitError:
        im.close()
        raise
    return im


def open_unchecked(data: bytes) -> Image.Image:
    """What ``Image.open`` does (header only), without its check against the global limit.

    The plugin for the format packer sniffs is tried first; then every plugin Pillow has whose
    ``accept`` takes the first bytes, in Pillow's own order, as ``Image.open`` tries them.
    """
    from PIL import Image, UnidentifiedImageError

    fmt = sniff_format(data)
    first = _PILLOW_IDS.get(fmt, fmt) if fmt is not None else None
    for load in (Image.preinit, Image.init):
        load()  # registers plugins, as Image.open does: the common ones, then all
        order = ([first] if first in Image.OPEN else []) + [i for i in Image.ID if i != first]
        for plugin in order:
            factory, accept = Image.OPEN[plugin]
            verdict = True if accept is None else accept(data[:16])
            if not verdict or isinstance(verdict, str):  # a str: "mine, but unsupported"
                continue
            with contextlib.suppress(SyntaxError, IndexError, TypeError, struct.error):
                return factory(io.BytesIO(data), "")
    raise UnidentifiedImageError("cannot identify image file")


def frames(im: Image.Image, max_pixels: int) -> Iterator[Image.Image]:
    """Every frame of ``im``, each checked against the limit before the caller loads it."""
    from PIL import ImageSequence

    for frame in ImageSequence.Iterator(im):
        check_pixels(frame, max_pixels)
        yield frame
