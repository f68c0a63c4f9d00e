"""Convert-time image transforms: explicit, deterministic, recorded in the manifest.

The default is byte passthrough: a pack stores each source file's bytes unchanged. A
:class:`Transform` decodes (applying the EXIF orientation), converts the mode, resizes, and either
re-encodes (byte backends) or hands over the decoded pixels (fixed-shape backends: memmap, hdf5).

When the target is much smaller than a JPEG source, decoding uses Pillow's reduced-size JPEG decode
(``Image.draft``): libjpeg scales by 1/2, 1/4 or 1/8 during the IDCT, never below the size the resize
needs, which is several times faster than decoding every pixel (``benchmarks/decode_draft.py``).
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from packer.errors import UsageError
from packer.images.checks import DEFAULT_MAX_PIXELS, UnscalableImageError
from packer.images.opening import open_image

RESIZE_MODES = ("stretch", "center-crop", "pad")
COLOR_MODES = ("RGB", "L")
_RESAMPLE = (
    Image.Resampling.BILINEAR
)  # antialiased in Pillow when downscaling, like torchvision's default
_ENCODINGS = {"jpeg": ("JPEG", "jpg"), "png": ("PNG", "png"), "webp": ("WEBP", "webp")}


def parse_hw(text: str) -> tuple[int, int]:
    """``"224x192"`` -> (224, 192) as (height, width); ``"224"`` -> (224, 224)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text)
    if not m:
        raise UsageError(f"--size {text!r} must look like HxW (e.g. 224x224) or a single number")
    h = int(m.group(1))
    w = int(m.group(2) or h)
    if not (0 < h <= 65535 and 0 < w <= 65535):
        raise UsageError(f"--size {text!r}: height and width must be between 1 and 65535")
    return h, w


@dataclass(frozen=True)
class Transform:
    """What to do to each image at convert time.

    Args:
        size: (height, width) to resize to, or None to keep the size.
        resize: ``stretch`` (ignore aspect ratio), ``center-crop`` (cover, then crop the middle) or
            ``pad`` (fit inside, pad with black).
        mode: ``RGB`` or ``L`` (grayscale); None keeps the decoded mode (fixed-shape packs need one).
        reencode: ``jpeg:Q``, ``png`` or ``webp:Q`` for byte backends; None for pixel packs.
        draft: allow reduced-size JPEG decoding when the target is at most half the source size.
    """

    size: tuple[int, int] | None = None
    resize: str = "stretch"
    mode: str | None = None
    reencode: str | None = None
    draft: bool = True

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise UsageError(f"--resize {self.resize!r} must be one of: {', '.join(RESIZE_MODES)}")
        if self.mode is not None and self.mode not in COLOR_MODES:
            raise UsageError(f"--mode {self.mode!r} must be one of: {', '.join(COLOR_MODES)}")
        if self.reencode is not None:
            fmt = self._encoding()[0]  # validates
            if fmt == "WEBP" and self.mode == "L":
                raise UsageError(
                    "--mode L --reencode webp: WebP has no greyscale mode (it would store RGB); "
                    "use --reencode png or jpeg:Q for greyscale, or --mode RGB"
                )

    @classmethod
    def build(
        cls,
        *,
        size: str | tuple[int, int] | None = None,
        resize: str = "stretch",
        mode: str | None = None,
        reencode: str | None = None,
        draft: bool = True,
    ) -> Transform | None:
        """A Transform from CLI-style values, or None for byte passthrough."""
        if size is None and mode is None and reencode is None:
            return None
        parsed = parse_hw(size) if isinstance(size, str) else size
        return cls(parsed, resize, mode, reencode, draft)

    def _encoding(self) -> tuple[str, str, dict[str, Any]]:
        assert self.reencode is not None
        name, _, quality = self.reencode.lower().partition(":")
        if name not in _ENCODINGS:
            raise UsageError(
                f"--reencode {self.reencode!r} must be jpeg:Q, png or webp:Q (Q = 1..100)"
            )
        fmt, ext = _ENCODINGS[name]
        params: dict[str, Any] = {}
        if name == "png":
            if quality:
                raise UsageError(f"--reencode {self.reencode!r}: png takes no quality")
            params["optimize"] = False
        else:
            if not quality.isdigit() or not 1 <= int(quality) <= 100:
                raise UsageError(
                    f"--reencode {self.reencode!r} needs a quality 1..100, e.g. {name}:90"
                )
            params["quality"] = int(quality)
        return fmt, ext, params

    @property
    def encode_extension(self) -> str:
        """The file extension of re-encoded samples (``jpg``, ``png``, ``webp``)."""
        return self._encoding()[1]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["size"] = list(self.size) if self.size else None
        return d

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Transform:
        size = raw.get("size")
        return cls(
            (int(size[0]), int(size[1])) if size else None,
            raw.get("resize", "stretch"),
            raw.get("mode"),
            raw.get("reencode"),
            bool(raw.get("draft", True)),
        )

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    def pixel_shape(self) -> tuple[int, int, int]:
        if self.size is None or self.mode is None:
            raise UsageError("fixed-shape packs need both --size HxW and --mode RGB|L")
        return (*self.size, self.channels)

    # -- the work ----------------------------------------------------------------------------

    def _draft_request(self, width: int, height: int) -> tuple[int, int] | None:
        """The smallest decode size that still gives the resize all the pixels it uses."""
        if self.size is None:
            return None
        th, tw = self.size
        if self.resize == "stretch":
            need = (tw, th)
        else:
            scale = (max if self.resize == "center-crop" else min)(tw / width, th / height)
            need = (math.ceil(width * scale), math.ceil(height * scale))
        if need[0] * 2 > width or need[1] * 2 > height:
            return None  # less than a 2x reduction: draft would not help
        return need

    def decode(self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
        """Decode, orient by EXIF, convert the mode and resize: the transform's pixels as an
        Image. An image over ``max_pixels`` is refused from its header (:class:`PixelLimitError`)."""
        im: Image.Image = open_image(data, max_pixels)
        if self.draft and im.format == "JPEG":
            width, height = im.size
            if _rotated(im):  # the target applies after the EXIF rotation swaps the axes
                swapped = self._draft_request(height, width)
                request = (swapped[1], swapped[0]) if swapped else None
            else:
                request = self._draft_request(width, height)
            if request is not None:
                im.draft("L" if self.mode == "L" else "RGB", request)
        im = ImageOps.exif_transpose(im)
        if im.mode in WIDE_MODES:
            im = to_8bit(im)
        if self.mode is not None and im.mode != self.mode:
            im = im.convert(self.mode)
        elif im.mode not in ("RGB", "L", "RGBA", "LA"):
            im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
        if self.size is not None:
            h, w = self.size
            if self.resize == "stretch":
                im = im.resize((w, h), _RESAMPLE)
            elif self.resize == "center-crop":
                im = ImageOps.fit(im, (w, h), _RESAMPLE)
            else:
                im = ImageOps.pad(im, (w, h), _RESAMPLE, color=0)
        return im

    def pixels(self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """H x W x C uint8 pixels (fixed-shape packs)."""
        arr = np.asarray(self.decode(data, max_pixels), dtype=np.uint8)
        return arr.reshape(*arr.shape[:2], -1)

    def encode(self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[bytes, str]:
        """Re-encoded bytes and their extension (byte backends)."""
        fmt, ext, params = self._encoding()
        im = self.decode(data, max_pixels)
        if fmt == "JPEG" and im.mode not in ("RGB", "L"):
            im = im.convert("RGB")  # JPEG has no alpha
        buf = io.BytesIO()
        im.save(buf, fmt, **params)
        return buf.getvalue(), ext


WIDE_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


def to_8bit(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float greyscale -> 8-bit ``L``, scaled, never clipped.

    Pillow's own ``convert("L")`` clips (every 16-bit value over 255 becomes 255). 16-bit data is
    scaled from 0..65535; 32-bit integers by the range they fit (0..255 or 0..65535); floats from
    0..1 (or 0..255). Anything else has no obvious 8-bit meaning and is refused.
    """
    arr = np.asarray(im)
    if im.mode.startswith("I;16"):
        scale = 65535.0
    elif im.mode == "I" and arr.size and int(arr.min()) >= 0 and int(arr.max()) <= 65535:
        scale = 255.0 if int(arr.max()) <= 255 else 65535.0
    elif im.mode == "F" and arr.size and np.isfinite(arr).all() and float(arr.min()) >= 0:
        top = float(arr.max())
        scale = 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 0.0
    else:
        scale = 0.0
    if not scale:
        low, high = (arr.min(), arr.max()) if arr.size else (0, 0)
        raise UnscalableImageError(
            f"{im.mode} image with values {low}..{high} has no obvious 8-bit scale; "
            "convert it yourself, or pack its bytes unchanged (no --size/--mode)"
        )
    scaled = np.rint(arr.astype(np.float64) * (255.0 / scale))
    return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8))


def _rotated(im: Image.Image) -> bool:
    try:
        return im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:  # a broken EXIF block: orientation is then ignored by exif_transpose too
        return False
