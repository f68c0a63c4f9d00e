"""Validation never rejects what Pillow decodes completely, and catches what a header can tell."""

from __future__ import annotations

import io
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageSequence

from oddimages import BROKEN, VALID, bmp_os2
from packer.images.checks import full_check, header_size, quick_check


def pillow_decodes(data: bytes) -> bool:
    """The oracle: Pillow opens the file and loads every frame, with its default strictness."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                for frame in ImageSequence.Iterator(im):
                    frame.load()
    except Exception:
        return False
    return True


def pillow_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_images_pass_both_checks(name: str) -> None:
    data = VALID[name][1]()
    assert pillow_decodes(data), "the fixture itself must be a valid image"
    assert quick_check(data) is None
    assert full_check(data) is None


@pytest.mark.parametrize("name", sorted(VALID))
def test_header_size_agrees_with_pillow(name: str) -> None:
    data = VALID[name][1]()
    assert header_size(data) == pillow_size(data)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_images_fail_both_checks(name: str) -> None:
    _, make, words = BROKEN[name]
    data = make()
    quick, full = quick_check(data), full_check(data)
    assert quick is not None and words in quick, quick
    assert full is not None
    assert "BytesIO" not in quick and "BytesIO" not in full


def test_os2_bitmap_is_not_a_bomb() -> None:
    # The 12-byte header holds 16-bit sizes; read as 32-bit they made a 2.2e12-pixel "bomb".
    assert header_size(bmp_os2(5, 3)) == (5, 3)
    assert quick_check(bmp_os2(5, 3), max_pixels=100) is None


def test_bomb_message_quotes_one_limit() -> None:
    data = VALID["png"][1]()  # 9 x 7 = 63 pixels
    for reason in (quick_check(data, max_pixels=50), full_check(data, max_pixels=50)):
        assert reason is not None and "63 pixels" in reason and "50 pixel limit" in reason


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(sorted(VALID)), tail=st.binary(min_size=1, max_size=2000))
def test_data_after_the_end_is_never_rejected(name: str, tail: bytes) -> None:
    """Padding, garbage, a second image: whatever follows a complete image, it stays valid."""
    data = VALID[name][1]() + tail
    if not pillow_decodes(data):  # e.g. a GIF whose junk parses as another, broken frame
        return
    assert quick_check(data) is None
    assert full_check(data) is None


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(VALID)), cut=st.floats(min_value=0.0, max_value=1.0))
def test_truncation_agrees_with_pillow(name: str, cut: float) -> None:
    """Cut a valid image anywhere: if Pillow still decodes every frame, neither check rejects it;
    if the full check accepts it, Pillow decodes it."""
    data = VALID[name][1]()
    cut_data = data[: max(1, int(len(data) * cut))]
    decodes = pillow_decodes(cut_data)
    quick, full = quick_check(cut_data), full_check(cut_data)
    if decodes:
        assert quick is None, quick
        assert full is None, full
    if full is None:
        assert decodes


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("name", ["jpeg", "jpeg-progressive", "png", "bmp", "webp-vp8", "tiff"])
def test_real_truncation_is_caught_by_quick(name: str, cut: float) -> None:
    data = VALID[name][1]()
    truncated = data[: int(len(data) * cut)]
    assert not pillow_decodes(truncated)
    assert quick_check(truncated) is not None
