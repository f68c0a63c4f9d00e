"""Stored bytes -> what a training step wants (bytes, PIL, numpy, tensor), picklable."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from PIL import Image

from packer.errors import UsageError
from packer.images.transforms import WIDE_MODES, Transform, to_8bit

DECODE_MODES = ("bytes", "pil", "numpy", "tensor")


class Decoder:
    """Turns stored bytes into what a training step wants, picklable so workers can use it.

    Args:
        decode: ``bytes`` (as stored), ``pil`` (RGB ``PIL.Image``, like ImageFolder's loader),
            ``numpy`` (H x W x C uint8) or ``tensor`` (C x H x W uint8 ``torch.Tensor``).
        size: optional (H, W): decode straight to this size, using reduced-size JPEG decoding
            (Pillow ``draft``) when it helps -- much faster for small training resolutions.
        resize: how ``size`` is met: ``stretch``, ``center-crop`` or ``pad``.
        pixel_shape: set for pixel packs, whose payload is raw H x W x C uint8 (no decoding).
    """

    def __init__(
        self,
        decode: str = "pil",
        size: tuple[int, int] | None = None,
        resize: str = "center-crop",
        pixel_shape: tuple[int, int, int] | None = None,
    ) -> None:
        if decode not in DECODE_MODES:
            raise UsageError(f"decode={decode!r} must be one of: {', '.join(DECODE_MODES)}")
        self.decode = decode
        self.pixel_shape = pixel_shape
        self.transform = Transform(size=size, resize=resize, mode="RGB") if size else None

    def _array(self, data: bytes) -> np.ndarray:
        if self.pixel_shape is not None:
            return np.frombuffer(data, dtype=np.uint8).reshape(self.pixel_shape)
        if self.transform is not None:
            return self.transform.pixels(data)
        return np.asarray(open_rgb(data))

    def __call__(self, data: bytes) -> Any:
        if self.decode == "bytes":
            return data
        if self.decode == "pil":
            if self.pixel_shape is None and self.transform is None:
                return open_rgb(data)
            arr = self._array(data)
            return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        arr = self._array(data)
        if self.decode == "numpy":
            return arr if arr.flags.writeable else arr.copy()
        # CHW uint8; the transposing copy also gives the tensor writable memory of its own
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def open_rgb(data: bytes) -> Image.Image:
    """ImageFolder's loader (``convert("RGB")``), but 16-bit and float images are scaled, not
    clipped to white."""
    with Image.open(io.BytesIO(data)) as im:
        if im.mode in WIDE_MODES:
            return to_8bit(im).convert("RGB")
        return im.convert("RGB")
