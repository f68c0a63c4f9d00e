"""Convert-time transforms: explicit, deterministic, EXIF-aware, and draft decoding stays faithful."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from packer.errors import UsageError
from packer.images.transforms import Transform, parse_hw


def _jpeg(width: int, height: int, *, orientation: int | None = None, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    # smooth content, so reduced-size decoding is comparable to a full decode + resize
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], axis=-1
    )
    pixels = np.clip(base + rng.integers(-4, 5, base.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(pixels)
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    im.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_parse_size() -> None:
    assert parse_hw("224x192") == (224, 192)
    assert parse_hw("64") == (64, 64)
    for bad in ("", "0x5", "axb", "1x2x3"):
        with pytest.raises(UsageError):
            parse_hw(bad)


@pytest.mark.parametrize("resize", ["stretch", "center-crop", "pad"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_output_shape_and_mode(resize: str, mode: str) -> None:
    t = Transform(size=(20, 30), resize=resize, mode=mode)
    out = t.pixels(_jpeg(90, 50))
    assert out.shape == (20, 30, 1 if mode == "L" else 3) and out.dtype == np.uint8


def test_pad_keeps_aspect_with_black_bars() -> None:
    out = Transform(size=(40, 40), resize="pad", mode="L").pixels(
        _png(Image.new("L", (80, 40), 200))
    )
    assert (out[:10] == 0).all() and (out[-10:] == 0).all() and (out[12:28] == 200).all()


def test_exif_orientation_is_applied() -> None:
    upright = Transform(mode="RGB").pixels(_jpeg(60, 40))
    rotated = Transform(mode="RGB").pixels(_jpeg(60, 40, orientation=6))  # 90 degrees clockwise
    assert upright.shape == (40, 60, 3) and rotated.shape == (60, 40, 3)


@pytest.mark.parametrize("resize", ["stretch", "center-crop", "pad"])
def test_draft_decoding_is_close_to_full_decoding(resize: str) -> None:
    data = _jpeg(640, 480, orientation=6)
    fast = Transform(size=(64, 48), resize=resize, mode="RGB", draft=True).pixels(data).astype(int)
    full = Transform(size=(64, 48), resize=resize, mode="RGB", draft=False).pixels(data).astype(int)
    assert fast.shape == full.shape
    assert np.abs(fast - full).mean() < 3.0  # same picture; only resampling detail differs


def test_same_input_gives_same_bytes() -> None:
    data = _jpeg(200, 100)
    t = Transform(size=(32, 32), mode="RGB", reencode="jpeg:85")
    assert t.encode(data) == t.encode(data)
    assert t.encode(data)[1] == "jpg"


@pytest.mark.parametrize(
    "image",
    [
        Image.new("CMYK", (20, 10), (10, 20, 30, 40)),
        Image.new("P", (20, 10)),
        Image.new("LA", (20, 10), (100, 50)),
        Image.new("I;16", (20, 10), 4000),
        Image.new("RGBA", (20, 10), (1, 2, 3, 4)),
    ],
    ids=["cmyk", "palette", "la", "16bit", "rgba"],
)
def test_odd_modes_convert_explicitly(image: Image.Image) -> None:
    if image.mode == "P":
        image.info["transparency"] = 0
    data = _png(image) if image.mode != "CMYK" else _cmyk_jpeg(image)
    assert Transform(size=(8, 8), mode="RGB").pixels(data).shape == (8, 8, 3)
    assert Transform(size=(8, 8), mode="L").pixels(data).shape == (8, 8, 1)
    assert Transform(mode="RGB", reencode="jpeg:90").encode(data)[1] == "jpg"


def _cmyk_jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG")
    return buf.getvalue()


def test_animated_gif_uses_its_first_frame() -> None:
    frames = [Image.new("P", (10, 10), i) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert Transform(size=(5, 5), mode="L").pixels(buf.getvalue()).shape == (5, 5, 1)


@pytest.mark.parametrize("spec", ["jpeg", "jpeg:0", "jpeg:101", "png:9", "bmp", "webp:x"])
def test_bad_reencode_is_a_usage_error(spec: str) -> None:
    with pytest.raises(UsageError, match="--reencode"):
        Transform(reencode=spec)


def test_build_is_none_for_passthrough() -> None:
    assert Transform.build() is None
    t = Transform.build(size="32x16", mode="L")
    assert t is not None and Transform.from_dict(t.to_dict()) == t
