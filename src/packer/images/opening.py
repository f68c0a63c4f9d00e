"""Opening an image under a pixel limit passed in, leaving Pillow's process-wide one alone.

``PIL.Image.MAX_IMAGE_PIXELS`` belongs to the program that imported Pillow: packer never sets it
(setting and restoring it around a decode changes it for every other thread meanwhile). Instead
each open checks the image's size against the limit it is given before a pixel is decoded. A
format packer knows by its signature is opened through Pillow's own plugin for it (what
``Image.open`` calls, minus its global size check), so ``--max-pixels`` above Pillow's default
works; any other format goes through ``Image.open`` and so meets the caller's limit as well.
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
    from PIL import Image

    fmt = sniff_format(data)
    plugin = _PILLOW_IDS.get(fmt, fmt) if fmt is not None else None
    if plugin is not None and plugin not in Image.OPEN:
        Image.init()  # registers every plugin, as Image.open would for a rare format
    im: Image.Image | None = None
    if plugin is not None and plugin in Image.OPEN:
        factory = Image.OPEN[plugin][0]
        with contextlib.suppress(SyntaxError, IndexError, TypeError, struct.error):
            im = factory(io.BytesIO(data), "")  # what Image.open does, but its global check
    if im is None:  # unknown to packer, or the plugin refused it: Pillow's own way and words
        im = Image.open(io.BytesIO(data))
    try:
        check_pixels(im, max_pixels)
    except PixelLimitError:
        im.close()
        raise
    return im


def frames(im: Image.Image, max_pixels: int) -> Iterator[Image.Image]:
    """Every frame of ``im``, each checked against the limit before the caller loads it."""
    from PIL import ImageSequence

    for frame in ImageSequence.Iterator(im):
        check_pixels(frame, max_pixels)
        yield frame
