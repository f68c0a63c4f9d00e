"""What an image file's header and trailer bytes say, without decoding a pixel.

For each format packer checks quickly (JPEG, PNG, GIF, BMP incl. OS/2, WebP, TIFF, PNM): its
signature, its width and height as Pillow reports them, and whether the file is complete. Data after
the end is never a problem; where the bytes cannot tell, :class:`UndecidedError` asks the caller to
decode. Used by :func:`packer.images.checks.quick_check`; tested against Pillow on odd real-world files.
"""

from __future__ import annotations

import re
import struct

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


class UndecidedError(Exception):
    """The header and trailer bytes cannot tell; decode the file to find out. The message, if
    any, is the reason to give when the decode fails (clearer than the decoder's own)."""


class TruncatedError(ValueError):
    """A definite reason found in the header or trailer bytes."""


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


def _jpeg_header(data: bytes) -> tuple[tuple[int, int, int] | None, int]:
    """((height, width, components) of the first frame or None, position of the first scan or
    -1)."""
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
            frame = (h, w, data[pos + 9] if pos + 9 < n else 0)
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
            raise TruncatedError(f"truncated TIFF (tag {tag} lies past the end of the file)")
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


def _complete_jpeg(data: bytes, scan: int) -> None:
    if scan < 0:
        raise TruncatedError("truncated JPEG (no image data after the header)")
    # In entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so an FFD9 after
    # the first scan is the end of this image (an EXIF thumbnail's own EOI comes before it).
    if not data.endswith(b"\xff\xd9") and data.find(b"\xff\xd9", scan) < 0:
        raise TruncatedError("truncated JPEG (no end-of-image marker)")


def _complete_png(data: bytes) -> None:
    if len(data) < 33:
        raise TruncatedError("truncated PNG (cut inside its header)")
    if data[12:16] != b"IHDR":
        raise TruncatedError("damaged PNG (no IHDR chunk)")
    depth, colour, compression, filtering, interlace = data[24:29]
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise TruncatedError(
            f"invalid PNG header (compression {compression}, filter {filtering}, "
            f"interlace {interlace}; the PNG spec allows 0, 0, 0-1)"
        )
    if depth not in _PNG_DEPTHS.get(colour, ()):
        raise TruncatedError(f"invalid PNG header (bit depth {depth} with colour type {colour})")
    pos, n = 8, len(data)
    ends_with_iend = data.endswith(_PNG_IEND)
    if ends_with_iend and data[37:41] == b"IDAT":
        return  # the image data right after the header, the end marker last: the common case
    unpack = _CHUNK_HEAD.unpack_from
    while pos + 8 <= n:
        length, kind = unpack(data, pos)
        if kind == b"PLTE" and (length % 3 or length > 256 * 3):
            raise TruncatedError(f"invalid PNG palette ({length} bytes; at most 256 RGB entries)")
        if kind == b"IEND":
            return
        if kind == b"IDAT" and ends_with_iend:
            return  # the chunks before the image data are checked; the end is there
        pos += 12 + length
        if pos > n:  # the image data may be complete even so (the cut hit a checksum or a
            # chunk after it): only decoding can tell
            raise UndecidedError(f"truncated PNG (cut inside its {kind.decode('latin-1')} chunk)")
    raise UndecidedError("truncated PNG (no IEND chunk)")


def _complete_gif(data: bytes) -> None:
    if not data.endswith(b"\x3b"):
        raise UndecidedError  # no trailer, or data after it: a GIF's blocks need decoding to walk


def _complete_bmp(data: bytes) -> None:
    header = int.from_bytes(data[14:18], "little")
    width, height = _bmp_size(data)
    if width <= 0 or height == 0:
        raise TruncatedError(f"invalid BMP header (width {width}, height {height})")
    if header == 12:
        bits, compression = int.from_bytes(data[24:26], "little"), 0
    else:
        bits = int.from_bytes(data[28:30], "little")
        compression = int.from_bytes(data[30:34], "little")
    if compression not in (0, 3, 6) or bits not in (1, 2, 4, 8, 16, 24, 32):
        raise UndecidedError  # run-length or embedded JPEG/PNG: sizes are not known up front
    # The header's file-size field is often wrong: what counts is that every pixel row is there.
    offset = int.from_bytes(data[10:14], "little")
    row = (width * bits + 7) // 8  # the last row's padding may be missing: decoders do not need it
    needed = offset + (row + 3) // 4 * 4 * (height - 1) + row
    if len(data) < needed:
        raise TruncatedError(f"truncated BMP ({len(data)} of {needed} bytes)")


def _complete_webp(data: bytes) -> None:
    declared = int.from_bytes(data[4:8], "little") + 8
    if declared > len(data):
        raise TruncatedError(f"truncated WebP ({len(data)} of {declared} bytes)")


def _complete_tiff(data: bytes) -> None:
    try:
        tags = _tiff_ifd(data)
    except (struct.error, IndexError) as exc:
        raise TruncatedError("truncated TIFF (its first directory lies past the end)") from exc
    offsets, counts = tags.get(273) or tags.get(324), tags.get(279) or tags.get(325)
    if not offsets or not counts or len(offsets) != len(counts):
        raise UndecidedError
    end = max(o + c for o, c in zip(offsets, counts, strict=True))
    if end > len(data):
        raise TruncatedError(f"truncated TIFF ({len(data)} of {end} bytes)")


def _complete_pnm(data: bytes) -> None:
    m = _PNM_HEADER.match(data)
    if m is None:
        raise TruncatedError("damaged PNM header")
    kind, width, height = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if width <= 0 or height <= 0:
        raise TruncatedError(f"invalid PNM header (width {width}, height {height})")
    if kind in (1, 2, 3):
        raise UndecidedError  # ASCII pixels: no fixed size
    if kind == 4:
        needed = m.end() + 1 + (width + 7) // 8 * height
    else:
        mv = _PNM_MAXVAL.match(data, m.end())
        if mv is None:
            raise TruncatedError("damaged PNM header (no maximum value)")
        sample = 1 if int(mv.group(1)) < 256 else 2
        needed = mv.end() + width * height * (3 if kind == 6 else 1) * sample
    if len(data) < needed:
        raise TruncatedError(f"truncated PNM ({len(data)} of {needed} bytes)")


_COMPLETENESS = {
    "PNG": _complete_png,
    "GIF": _complete_gif,
    "BMP": _complete_bmp,
    "WEBP": _complete_webp,
    "TIFF": _complete_tiff,
    "PNM": _complete_pnm,
}


def read_header(data: bytes) -> tuple[str | None, tuple[int, int] | None, int]:
    """(format or None, (width, height) or None, position of a JPEG's first scan or -1)."""
    fmt = sniff_format(data)
    if fmt is None:
        return None, None, -1
    scan = -1
    try:
        if fmt == "JPEG":  # one walk of the segments gives both the size and the first scan
            frame, scan = _jpeg_header(data)
            size = None if frame is None else (frame[1], frame[0])
        else:
            size = _SIZE_READERS[fmt](data)
    except (struct.error, IndexError, ValueError):
        size = None
    return fmt, size, scan


#: JPEG components -> Pillow mode; PNG (colour type, bit depth) -> Pillow mode
_JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}
_PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}


_IHDR = struct.Struct(">4sIIBB")


def fast_header(data: bytes) -> tuple[str, str, int, int] | None:
    """(format, Pillow mode, width, height) of a JPEG or PNG from its header, in one pass; None
    for other formats or odd headers (ask Pillow then)."""
    try:
        if data.startswith(_PNG_SIGNATURE):
            chunk, w, h, depth, colour = _IHDR.unpack_from(data, 12)
            if chunk != b"IHDR":
                return None
            if colour == 0 and depth in (1, 16):
                mode: str | None = "1" if depth == 1 else "I;16"
            else:
                mode = _PNG_MODES.get(colour)
            return None if mode is None else ("PNG", mode, w, h)
        if data.startswith(b"\xff\xd8\xff"):
            frame = _jpeg_header(data)[0]
            mode = None if frame is None else _JPEG_MODES.get(frame[2])
            return None if frame is None or mode is None else ("JPEG", mode, frame[1], frame[0])
    except (struct.error, IndexError):
        return None
    return None


def check_complete(data: bytes, fmt: str, scan: int) -> None:
    """Raise :class:`TruncatedError` (with the reason) if the file is cut short or its header is
    invalid, :class:`UndecidedError` if only decoding can tell; return if it is complete."""
    try:
        if fmt == "JPEG":
            _complete_jpeg(data, scan)
        else:
            _COMPLETENESS[fmt](data)
    except (TruncatedError, UndecidedError):
        raise
    except (struct.error, IndexError, ValueError):
        raise TruncatedError(f"damaged {fmt} header") from None
