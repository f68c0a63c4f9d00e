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
import io
import re
import struct
import warnings
from collections.abc import Iterator

# Pillow is imported only where an image is decoded: the quick check needs none of it.

VALIDATE_MODES = ("none", "quick", "full")
#: Pillow's own limit; larger images are refused unless --max-pixels raises it.
DEFAULT_MAX_PIXELS = 89_478_485

_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_CHUNK_HEAD = struct.Struct(">I4s")
#: PNG colour type -> allowed bit depths (PNG spec, table 11.1)
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNM_HEADER = re.compile(rb"P([1-6])(?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)")
_PNM_MAXVAL = re.compile(rb"(?:\s+|#[^\n]*\n)+(\d+)\s")
#: Extension (lower case) -> the format its content should have, for the mismatch warning.
EXTENSION_FORMATS = {
    "jpg": "JPEG",
    "jpeg": "JPEG",
    "jpe": "JPEG",
    "jfif": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "bmp": "BMP",
    "dib": "BMP",
    "webp": "WEBP",
    "tif": "TIFF",
    "tiff": "TIFF",
    "pbm": "PNM",
    "pgm": "PNM",
    "ppm": "PNM",
    "pnm": "PNM",
}


#: A prefix every file of the format starts with (cheap first test; ``sniff_format`` decides).
FORMAT_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "JPEG": (b"\xff\xd8\xff",),
    "PNG": (_PNG_SIGNATURE,),
    "GIF": (b"GIF8",),
    "BMP": (b"BM",),
    "WEBP": (b"RIFF",),
    "TIFF": (b"II*\x00", b"MM\x00*"),
    "PNM": (b"P",),
}


class UnscalableImageError(ValueError):
    """A transform cannot bring these pixels to 8 bits without guessing (the message says why)."""


class _UndecidedError(Exception):
    """The header and trailer bytes cannot tell; decode the file to find out. The message, if
    any, is the reason to give when the decode fails (clearer than the decoder's own)."""


def sniff_format(data: bytes) -> str | None:
    """The image format of ``data`` from its signature (``JPEG``, ``PNG``, ...), or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"BM") and len(data) >= 26:
        return "BMP"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if len(data) >= 3 and data[0:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return "PNM"
    return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from the header, as Pillow reports it; None if the format is unknown.

    A negative BMP width is returned as is (so that it is refused); a negative BMP height means a
    top-down image and is returned as its absolute value.
    """
    try:
        return _SIZE_READERS[sniff_format(data) or ""](data)
    except (KeyError, struct.error, IndexError, ValueError):
        return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def _gif_size(data: bytes) -> tuple[int, int]:
    w, h = struct.unpack("<HH", data[6:10])
    return w, h


def _bmp_size(data: bytes) -> tuple[int, int]:
    if int.from_bytes(data[14:18], "little") == 12:  # OS/2 1.x BITMAPCOREHEADER: 16-bit sizes
        w, h = struct.unpack("<HH", data[18:22])
        return w, h
    w, h = struct.unpack("<ii", data[18:26])
    return w, abs(h)


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    frame = _jpeg_header(data)[0]
    return None if frame is None else (frame[1], frame[0])


def _jpeg_header(data: bytes) -> tuple[tuple[int, int] | None, int]:
    """((height, width) of the first frame or None, position of the first scan or -1)."""
    pos, n, frame = 2, len(data), None
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            pos = data.find(b"\xff", pos)  # Pillow skips stray bytes between segments too
            if pos < 0:
                break
            continue
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1  # fill byte
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2  # markers without a length
            continue
        if marker == 0xDA:
            return frame, pos
        if marker == 0xD9:
            break
        if marker in _JPEG_SOF and frame is None and pos + 9 <= n:
            h, w = struct.unpack(">HH", data[pos + 5 : pos + 9])
            frame = (h, w)
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return frame, -1


def _tiff_ifd(data: bytes) -> dict[int, list[int]]:
    """The first IFD's integer tags of a classic TIFF (tag -> values)."""
    order = "<" if data.startswith(b"II") else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    tags: dict[int, list[int]] = {}
    kinds = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}  # SHORT, LONG, LONG8
    for k in range(count):
        entry = offset + 2 + 12 * k
        tag, kind, n = struct.unpack(order + "HHI", data[entry : entry + 8])
        if kind not in kinds or n > 1 << 20:
            continue
        code, width = kinds[kind]
        where = entry + 8
        if n * width > 4:
            (where,) = struct.unpack(order + "I", data[entry + 8 : entry + 12])
        raw = data[where : where + n * width]
        if len(raw) != n * width:
            raise _TruncatedError(f"truncated TIFF (tag {tag} lies past the end of the file)")
        tags[tag] = list(struct.unpack(f"{order}{n}{code}", raw))
    return tags


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    tags = _tiff_ifd(data)
    if 256 not in tags or 257 not in tags:
        return None
    return tags[256][0], tags[257][0]


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    m = _PNM_HEADER.match(data)
    return None if m is None else (int(m.group(2)), int(m.group(3)))


_SIZE_READERS = {
    "PNG": _png_size,
    "GIF": _gif_size,
    "BMP": _bmp_size,
    "WEBP": _webp_size,
    "JPEG": _jpeg_size,
    "TIFF": _tiff_size,
    "PNM": _pnm_size,
}


class _TruncatedError(ValueError):
    """A definite reason found in the header or trailer bytes."""


def _complete_jpeg(data: bytes, scan: int) -> None:
    if scan < 0:
        raise _TruncatedError("truncated JPEG (no image data after the header)")
    # In entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so an FFD9 after
    # the first scan is the end of this image (an EXIF thumbnail's own EOI comes before it).
    if not data.endswith(b"\xff\xd9") and data.find(b"\xff\xd9", scan) < 0:
        raise _TruncatedError("truncated JPEG (no end-of-image marker)")


def _complete_png(data: bytes) -> None:
    if len(data) < 33:
        raise _TruncatedError("truncated PNG (cut inside its header)")
    if data[12:16] != b"IHDR":
        raise _TruncatedError("damaged PNG (no IHDR chunk)")
    depth, colour, compression, filtering, interlace = data[24:29]
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise _TruncatedError(
            f"invalid PNG header (compression {compression}, filter {filtering}, "
            f"interlace {interlace}; the PNG spec allows 0, 0, 0-1)"
        )
    if depth not in _PNG_DEPTHS.get(colour, ()):
        raise _TruncatedError(f"invalid PNG header (bit depth {depth} with colour type {colour})")
    pos, n = 8, len(data)
    ends_with_iend = data.endswith(_PNG_IEND)
    if ends_with_iend and data[37:41] == b"IDAT":
        return  # the image data right after the header, the end marker last: the common case
    unpack = _CHUNK_HEAD.unpack_from
    while pos + 8 <= n:
        length, kind = unpack(data, pos)
        if kind == b"PLTE" and (length % 3 or length > 256 * 3):
            raise _TruncatedError(f"invalid PNG palette ({length} bytes; at most 256 RGB entries)")
        if kind == b"IEND":
            return
        if kind == b"IDAT" and ends_with_iend:
            return  # the chunks before the image data are checked; the end is there
        pos += 12 + length
        if pos > n:  # the image data may be complete even so (the cut hit a checksum or a
            # chunk after it): only decoding can tell
            raise _UndecidedError(f"truncated PNG (cut inside its {kind.decode('latin-1')} chunk)")
    raise _UndecidedError("truncated PNG (no IEND chunk)")


def _complete_gif(data: bytes) -> None:
    if not data.endswith(b"\x3b"):
        raise _UndecidedError  # no trailer, or data after it: a GIF's blocks need decoding to walk


def _complete_bmp(data: bytes) -> None:
    header = int.from_bytes(data[14:18], "little")
    width, height = _bmp_size(data)
    if width <= 0 or height == 0:
        raise _TruncatedError(f"invalid BMP header (width {width}, height {height})")
    if header == 12:
        bits, compression = int.from_bytes(data[24:26], "little"), 0
    else:
        bits = int.from_bytes(data[28:30], "little")
        compression = int.from_bytes(data[30:34], "little")
    if compression not in (0, 3, 6) or bits not in (1, 2, 4, 8, 16, 24, 32):
        raise _UndecidedError  # run-length or embedded JPEG/PNG: sizes are not known up front
    # The header's file-size field is often wrong: what counts is that every pixel row is there.
    offset = int.from_bytes(data[10:14], "little")
    row = (width * bits + 7) // 8  # the last row's padding may be missing: decoders do not need it
    needed = offset + (row + 3) // 4 * 4 * (height - 1) + row
    if len(data) < needed:
        raise _TruncatedError(f"truncated BMP ({len(data)} of {needed} bytes)")


def _complete_webp(data: bytes) -> None:
    declared = int.from_bytes(data[4:8], "little") + 8
    if declared > len(data):
        raise _TruncatedError(f"truncated WebP ({len(data)} of {declared} bytes)")


def _complete_tiff(data: bytes) -> None:
    try:
        tags = _tiff_ifd(data)
    except (struct.error, IndexError) as exc:
        raise _TruncatedError("truncated TIFF (its first directory lies past the end)") from exc
    offsets, counts = tags.get(273) or tags.get(324), tags.get(279) or tags.get(325)
    if not offsets or not counts or len(offsets) != len(counts):
        raise _UndecidedError
    end = max(o + c for o, c in zip(offsets, counts, strict=True))
    if end > len(data):
        raise _TruncatedError(f"truncated TIFF ({len(data)} of {end} bytes)")


def _complete_pnm(data: bytes) -> None:
    m = _PNM_HEADER.match(data)
    if m is None:
        raise _TruncatedError("damaged PNM header")
    kind, width, height = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if width <= 0 or height <= 0:
        raise _TruncatedError(f"invalid PNM header (width {width}, height {height})")
    if kind in (1, 2, 3):
        raise _UndecidedError  # ASCII pixels: no fixed size
    if kind == 4:
        needed = m.end() + 1 + (width + 7) // 8 * height
    else:
        mv = _PNM_MAXVAL.match(data, m.end())
        if mv is None:
            raise _TruncatedError("damaged PNM header (no maximum value)")
        sample = 1 if int(mv.group(1)) < 256 else 2
        needed = mv.end() + width * height * (3 if kind == 6 else 1) * sample
    if len(data) < needed:
        raise _TruncatedError(f"truncated PNM ({len(data)} of {needed} bytes)")


_COMPLETENESS = {
    "PNG": _complete_png,
    "GIF": _complete_gif,
    "BMP": _complete_bmp,
    "WEBP": _complete_webp,
    "TIFF": _complete_tiff,
    "PNM": _complete_pnm,
}


def quick_check(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """``None`` when ``data`` looks like a complete image, else the reason it does not.

    Decodes only when the header and trailer bytes cannot tell (see the module docstring).
    """
    if not data:
        return "empty file (0 bytes)"
    fmt = sniff_format(data)
    if fmt is None:
        return _decode_check(data, max_pixels, all_frames=False)
    scan = -1
    try:
        if fmt == "JPEG":  # one walk of the segments gives both the size and the first scan
            frame, scan = _jpeg_header(data)
            size = None if frame is None else (frame[1], frame[0])
        else:
            size = _SIZE_READERS[fmt](data)
    except (struct.error, IndexError, ValueError):
        size = None
    if size is not None:
        width, height = size
        if width <= 0 or height <= 0:
            return f"invalid {fmt} header (width {width}, height {height})"
        if width * height > max_pixels:
            return bomb_reason(width, height, max_pixels)
    try:
        if fmt == "JPEG":
            _complete_jpeg(data, scan)
        else:
            _COMPLETENESS[fmt](data)
    except _TruncatedError as exc:
        return str(exc)
    except _UndecidedError as exc:
        reason = _decode_check(data, max_pixels, all_frames=False)
        return str(exc) if reason is not None and str(exc) else reason
    except (struct.error, IndexError, ValueError):
        return f"damaged {fmt} header"
    return None


def bomb_reason(width: int, height: int, max_pixels: int) -> str:
    """The one message for an image over the pixel limit, whoever finds it."""
    return (
        f"decompression bomb: {width} x {height} = {width * height:,} pixels is over the "
        f"{max_pixels:,} pixel limit (raise it with --max-pixels if the image is genuine)"
    )


def full_check(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Decode every frame of the image; ``None`` if it decodes, else why not."""
    reason = quick_check(data, max_pixels)
    if reason is not None:
        return reason
    return _decode_check(data, max_pixels, all_frames=True)


def _decode_check(data: bytes, max_pixels: int, *, all_frames: bool) -> str | None:
    from PIL import Image, ImageSequence

    try:
        with quiet_decoder(), pixel_limit(max_pixels), Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > max_pixels:
                return bomb_reason(im.width, im.height, max_pixels)
            frames = ImageSequence.Iterator(im) if all_frames else [im]
            for frame in frames:
                frame.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return f"decompression bomb: over the {max_pixels:,} pixel limit (raise it with --max-pixels if the image is genuine)"
    except Exception as exc:  # Pillow raises many types for bad data
        return decode_error_reason(exc)
    return None


def decode_error_reason(exc: BaseException) -> str:
    """Pillow's message for an undecodable file, without the ``<_io.BytesIO object at 0x...>``."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnscalableImageError):
        return str(exc)
    if isinstance(exc, UnidentifiedImageError):
        return "not an image (Pillow cannot identify it)"
    text = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc))
    return f"does not decode ({type(exc).__name__}: {text})"


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


_SINKS: list[list[str]] = []  # open quiet_decoder blocks, innermost last


@contextlib.contextmanager
def quiet_decoder() -> Iterator[list[str]]:
    """Collect the warnings a decoder raises (invalid APNG, corrupt EXIF...) instead of printing them.

    Yields the list the messages are appended to, so the caller can report them with the sample's
    key; a block inside another hands its messages on to the outer one. libtiff prints its own
    warnings from C: its handler is switched off once (see :func:`_silence_libtiff`).
    """
    _silence_libtiff()
    from PIL import Image

    found: list[str] = []
    _SINKS.append(found)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                yield found
            finally:
                found.extend(str(w.message) for w in caught)
    finally:
        _SINKS.pop()
        if _SINKS:
            _SINKS[-1].extend(found)


_LIBTIFF_SILENCED = False


def _silence_libtiff() -> None:
    """Turn off libtiff's stderr warning handler in the libtiff that Pillow loaded.

    Without this, ``verify --deep`` on a TIFF dataset prints one line per unknown tag straight from
    C (hundreds of lines). Errors still reach Pillow and become exceptions.
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
