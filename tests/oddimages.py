"""Images as users really have them, built in memory: the odd cases of phone cameras, old tools and
Pillow's own test corpus (padding after the end marker, MPF pairs, EXIF thumbnails, OS/2 and v5
BMP headers, 16-bit and float TIFFs, CMYK, restart markers, animated GIF/WebP...)."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def noise(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "CMYK": 4}[mode]
    arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    im = Image.frombytes(mode, (w, h), arr.tobytes())
    return im


def jpeg(w: int = 40, h: int = 30, **params: object) -> bytes:
    return encode(noise(w, h), "JPEG", quality=90, **params)


def jpeg_with_exif_thumbnail() -> bytes:
    """A JPEG whose APP1 carries a complete thumbnail JPEG (its own SOI..EOI) before the main scan."""
    main = jpeg(48, 32)
    thumb = jpeg(8, 8)
    payload = b"Exif\x00\x00" + b"MM\x00*\x00\x00\x00\x08" + b"\x00\x00" + thumb
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return main[:2] + app1 + main[2:]


def jpeg_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    return encode(noise(40, 20), "JPEG", exif=exif.tobytes())


def bmp_os2(w: int = 5, h: int = 3) -> bytes:
    """An OS/2 1.x bitmap: 12-byte BITMAPCOREHEADER with 16-bit width and height."""
    stride = (w * 3 + 3) // 4 * 4
    pixels = b"".join(bytes(range(3 * w)) + b"\x00" * (stride - 3 * w) for _ in range(h))
    header = struct.pack("<IHHHH", 12, w, h, 1, 24)
    offset = 14 + len(header)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + header + pixels


def bmp_v5(w: int = 6, h: int = 4) -> bytes:
    """A 124-byte BITMAPV5HEADER bitmap, 24-bit, top-down (negative height)."""
    stride = (w * 3 + 3) // 4 * 4
    pixels = b"".join(
        bytes([(x * 40) % 256] * 3 * w) + b"\x00" * (stride - 3 * w) for x in range(h)
    )
    header = struct.pack("<IiiHHIIiiII", 124, w, -h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    header += struct.pack("<IIII", 0, 0, 0, 0) + b"BGRs" + b"\x00" * 36 + b"\x00" * 12
    header += struct.pack("<IIII", 4, 0, 0, 0)
    assert len(header) == 124
    offset = 14 + len(header)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + header + pixels


def bmp_wrong_size_field() -> bytes:
    data = bytearray(encode(noise(7, 5), "BMP"))
    data[2:6] = struct.pack("<I", 123)  # the header's file size lies; the pixels are all there
    return bytes(data)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_with_ihdr(
    width: int, height: int, depth: int = 8, colour: int = 2, compression: int = 0
) -> bytes:
    """A PNG whose IHDR says what the test wants, followed by plausible image data."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, compression, 0, 0)
    raw = b"".join(b"\x00" + b"\x80" * (3 * max(width, 1)) for _ in range(max(height, 1)))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def png_big_palette() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 4, 4, 8, 3, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\x01" * 4 for _ in range(4))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"PLTE", b"\x10" * (300 * 3))
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def tiff16() -> bytes:
    arr = (np.arange(64, dtype="<u2").reshape(8, 8) * 1000).astype("<u2")
    return encode(Image.frombytes("I;16", (8, 8), arr.tobytes()), "TIFF")


def tiff_float(values: list[float]) -> bytes:
    arr = np.array([values], dtype="<f4")
    return encode(Image.frombytes("F", (len(values), 1), arr.tobytes()), "TIFF")


def pgm16() -> bytes:
    arr = (np.arange(30, dtype=">u2").reshape(5, 6) * 2000).astype(">u2")
    return b"P5\n6 5\n65535\n" + arr.tobytes()


def animated_gif() -> bytes:
    frames = [noise(10, 10, seed=s).convert("P") for s in range(3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def animated_webp() -> bytes:
    frames = [noise(10, 10, seed=s) for s in range(3)]
    return encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50)


#: name -> (file extension, bytes): valid images that quick and full validation must accept.
VALID: dict[str, tuple[str, Callable[[], bytes]]] = {
    "jpeg": ("jpg", jpeg),
    "jpeg-phone-padding": ("jpg", lambda: jpeg() + b"\x00" * 300_000),
    "jpeg-garbage-after-eoi": ("jpg", lambda: jpeg() + b"trailing garbage" * 40),
    "jpeg-mpf-pair": ("jpg", lambda: jpeg(40, 30) + jpeg(20, 15)),
    "jpeg-exif-thumbnail": ("jpg", jpeg_with_exif_thumbnail),
    "jpeg-exif-rotated": ("jpg", jpeg_rotated),
    "jpeg-progressive": ("jpg", lambda: jpeg(progressive=True)),
    "jpeg-cmyk": ("jpg", lambda: encode(noise(16, 12, "CMYK"), "JPEG")),
    "jpeg-restart-markers": ("jpg", lambda: jpeg(64, 48, restart_marker_blocks=2)),
    "jpeg-grey": ("jpg", lambda: encode(noise(16, 12, "L"), "JPEG")),
    "png": ("png", lambda: encode(noise(9, 7), "PNG")),
    "png-after-iend": ("png", lambda: encode(noise(9, 7), "PNG") + b"\x00" * 4096),
    "png-16bit": ("png", lambda: encode(Image.frombytes("I;16", (4, 4), bytes(32)), "PNG")),
    "png-palette-transparency": (
        "png",
        lambda: encode(noise(8, 8).convert("P"), "PNG", transparency=0),
    ),
    "png-rgba": ("png", lambda: encode(noise(8, 8, "RGBA"), "PNG")),
    "gif": ("gif", lambda: encode(noise(8, 8).convert("P"), "GIF")),
    "gif-after-trailer": ("gif", lambda: encode(noise(8, 8).convert("P"), "GIF") + b"junk" * 30),
    "gif-animated": ("gif", animated_gif),
    "bmp": ("bmp", lambda: encode(noise(7, 5), "BMP")),
    "bmp-os2": ("bmp", bmp_os2),
    "bmp-v5": ("bmp", bmp_v5),
    "bmp-wrong-size-field": ("bmp", bmp_wrong_size_field),
    "bmp-palette": ("bmp", lambda: encode(noise(9, 5).convert("P"), "BMP")),
    "webp-vp8": ("webp", lambda: encode(noise(9, 7), "WEBP", quality=80)),
    "webp-vp8l": ("webp", lambda: encode(noise(9, 7), "WEBP", lossless=True)),
    "webp-vp8x-alpha": ("webp", lambda: encode(noise(9, 7, "RGBA"), "WEBP", quality=80)),
    "webp-animated": ("webp", animated_webp),
    "tiff": ("tif", lambda: encode(noise(9, 7), "TIFF")),
    "tiff-lzw": ("tiff", lambda: encode(noise(9, 7), "TIFF", compression="tiff_lzw")),
    "tiff-16bit": ("tif", tiff16),
    "tiff-float": ("tif", lambda: tiff_float([0.0, 0.25, 0.5, 1.0])),
    "pgm-16bit": ("pgm", pgm16),
    "ppm": ("ppm", lambda: encode(noise(5, 4), "PPM")),
}

#: name -> (file extension, bytes, words the reason must contain): files no decoder can use.
BROKEN: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "jpeg-cut-mid-scan": ("jpg", lambda: jpeg(64, 48)[:-400], "truncated JPEG"),
    "jpeg-cut-thumbnail-eoi-early": (
        "jpg",
        lambda: jpeg_with_exif_thumbnail()[:-200],
        "truncated JPEG",
    ),
    "jpeg-no-eoi": ("jpg", lambda: jpeg()[:-2], "truncated JPEG"),
    "jpeg-zero-height": ("jpg", lambda: _jpeg_zero_height(), "height 0"),
    "png-cut": ("png", lambda: encode(noise(30, 30), "PNG")[:-100], "truncated PNG"),
    "png-zero-width": ("png", lambda: png_with_ihdr(0, 4), "width 0"),
    "png-compression-method": ("png", lambda: png_with_ihdr(4, 4, compression=1), "compression 1"),
    "png-big-palette": ("png", png_big_palette, "palette"),
    "png-bad-depth": ("png", lambda: png_with_ihdr(4, 4, depth=3), "bit depth 3"),
    "gif-cut": ("gif", lambda: encode(noise(20, 20).convert("P"), "GIF")[:-30], "does not decode"),
    "bmp-cut": ("bmp", lambda: encode(noise(7, 5), "BMP")[:-20], "truncated BMP"),
    "bmp-negative-width": ("bmp", lambda: _bmp_width(-5), "width -5"),
    "bmp-os2-cut": ("bmp", lambda: bmp_os2()[:-10], "truncated BMP"),
    "webp-cut": ("webp", lambda: encode(noise(20, 20), "WEBP")[:-30], "truncated WebP"),
    "tiff-cut": ("tif", lambda: encode(noise(20, 20), "TIFF")[:-300], "truncated TIFF"),
    "pgm-cut": ("pgm", lambda: pgm16()[:-7], "truncated PNM"),
    "empty": ("jpg", lambda: b"", "empty"),
    "html-named-jpg": ("jpg", lambda: b"<html><body>404</body></html>", "not an image"),
}


def _jpeg_zero_height() -> bytes:
    data = bytearray(jpeg())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 7] = b"\x00\x00"
    return bytes(data)


def _bmp_width(width: int) -> bytes:
    data = bytearray(encode(noise(7, 5), "BMP"))
    data[18:22] = struct.pack("<i", width)
    return bytes(data)
