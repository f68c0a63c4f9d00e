"""Every bad-input case from docs/errors.md has a defined behaviour, tested here."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from packer import convert, open_pack
from packer.errors import SourceError
from packer.images.transforms import Transform
from packer.read.extract import extract


def _encode(im: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _good() -> bytes:
    return _encode(Image.new("RGB", (16, 12), (10, 200, 30)), "JPEG")


def _corrupt_png() -> bytes:
    data = bytearray(
        _encode(
            Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)),
            "PNG",
        )
    )
    data[len(data) // 2] ^= 0xFF  # damage inside the image data; the end marker is intact
    return bytes(data)


BAD_FILES: dict[str, tuple[str, Callable[[], bytes], str]] = {
    # case: (file name, contents, reason fragment)
    "truncated-jpeg": ("a.jpg", lambda: _good()[:-100], "truncated JPEG"),
    "zero-byte": ("a.jpg", lambda: b"", "empty file"),
    "text-as-jpg": ("a.jpg", lambda: b"<html>404 Not Found</html>", "not an image"),
    "truncated-png": (
        "a.png",
        lambda: _encode(Image.new("L", (20, 20)), "PNG")[:-30],
        "truncated PNG",
    ),
    "bomb": ("a.png", lambda: _encode(Image.new("1", (5000, 5000)), "PNG"), "decompression bomb"),
}


def _tree(root: Path, name: str, data: bytes) -> Path:
    (root / "cls").mkdir(parents=True)
    (root / "cls" / "good.jpg").write_bytes(_good())
    (root / "cls" / name).write_bytes(data)
    return root


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_fails_by_default_and_is_skipped_on_request(case: str, tmp_path: Path) -> None:
    name, make, reason = BAD_FILES[case]
    src = _tree(tmp_path / "src", name, make())
    with pytest.raises(SourceError, match=reason) as info:
        convert(src, tmp_path / "fail.pack", "tar", max_pixels=10_000_000)
    assert name in str(info.value) and "--on-error skip" in str(info.value)
    assert not (tmp_path / "fail.pack").exists()
    report = convert(src, tmp_path / "skip.pack", "tar", on_error="skip", max_pixels=10_000_000)
    assert [s.path for s in report.skipped] == [f"cls/{name}"] and reason in report.skipped[
        0
    ].reason
    assert open_pack(tmp_path / "skip.pack").manifest.skipped[0]["path"] == f"cls/{name}"


def test_max_pixels_lets_a_genuine_big_image_through(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", "big.png", _encode(Image.new("1", (5000, 5000)), "PNG"))
    assert convert(src, tmp_path / "p", "tar", max_pixels=30_000_000).num_samples == 2


def test_corrupt_png_passes_quick_but_not_full_validation(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", "a.png", _corrupt_png())
    assert convert(src, tmp_path / "quick.pack", "zip").num_samples == 2  # bytes are passed through
    with pytest.raises(SourceError, match="does not decode"):
        convert(src, tmp_path / "full.pack", "zip", validate="full")
    from packer import verify_pack

    report = verify_pack(tmp_path / "quick.pack", deep=True)
    assert not report.ok and any("a" in p.where and p.kind == "image" for p in report.problems)


ODD_IMAGES: dict[str, Callable[[], bytes]] = {
    "cmyk.jpg": lambda: _encode(Image.new("CMYK", (20, 10), (1, 2, 3, 4)), "JPEG"),
    "16bit.png": lambda: _encode(Image.new("I;16", (20, 10), 3000), "PNG"),
    "palette.png": lambda: _encode(Image.new("P", (20, 10), 1), "PNG", transparency=0),
    "la.png": lambda: _encode(Image.new("LA", (20, 10), (9, 9)), "PNG"),
    "anim.gif": lambda: _encode(
        Image.new("P", (20, 10)), "GIF", save_all=True, append_images=[Image.new("P", (20, 10), 5)]
    ),
    "exif6.jpg": lambda: _encode(Image.new("RGB", (20, 10)), "JPEG", exif=_exif_rotated()),
}


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif.tobytes()


def test_odd_images_pass_through_unchanged_and_convert_explicitly(tmp_path: Path) -> None:
    src = tmp_path / "src" / "cls"
    src.mkdir(parents=True)
    for name, make in ODD_IMAGES.items():
        (src / name).write_bytes(make())
    with open_pack(convert(src.parent, tmp_path / "raw.pack", "tar").path) as pack:
        for s in pack:
            assert s.data == (src / f"{s.key.split('/')[1]}.{s.ext}").read_bytes()
    pixels = convert(
        src.parent, tmp_path / "px.pack", "memmap", transform=Transform(size=(8, 8), mode="RGB")
    ).path
    with open_pack(pixels) as pack:
        assert all(pack.array(i).shape == (8, 8, 3) for i in range(len(pack)))
    upright = Transform(mode="RGB").pixels(ODD_IMAGES["exif6.jpg"]())
    assert upright.shape == (20, 10, 3)  # rotated by its EXIF orientation


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import packer.conversion.items as conversion

    src = _tree(tmp_path / "src", "locked.jpg", _good())
    original = conversion.read_file_stat

    def read_file_stat(path: str) -> tuple[bytes, int]:
        if path.endswith("locked.jpg"):
            raise PermissionError(13, "Permission denied", path)
        return original(path)

    monkeypatch.setattr(conversion, "read_file_stat", read_file_stat)
    with pytest.raises(SourceError, match="locked.jpg: cannot read \\(Permission denied\\)"):
        convert(src, tmp_path / "p", "tar")
    report = convert(src, tmp_path / "q", "tar", on_error="skip")
    assert report.num_samples == 1 and "Permission denied" in report.skipped[0].reason


def test_symlinks(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "cls").mkdir(parents=True)
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(_good())
    (src / "cls" / "linked.jpg").symlink_to(outside)  # pointing outside SRC: a policy
    (src / "cls" / "loop").symlink_to(src / "cls")  # a loop: visited once
    (src / "cls" / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (src / "cls" / "real.jpg").write_bytes(_good())
    with pytest.raises(SourceError, match="dangling.jpg: broken symbolic link"):
        convert(src, tmp_path / "p", "tar")
    report = convert(src, tmp_path / "q", "tar", on_error="skip")  # default: --symlinks inside
    assert report.num_samples == 1 and list(open_pack(tmp_path / "q").keys()) == ["cls/real"]
    kinds = {(w.kind, w.path) for w in report.warnings}
    assert ("symlink-outside", "cls/linked.jpg") in kinds
    assert ("folder-reached-twice", "cls/loop") in kinds
    report = convert(src, tmp_path / "r", "tar", on_error="skip", symlinks="follow")
    assert report.num_samples == 2 and open_pack(tmp_path / "r")[0].data == outside.read_bytes()
    assert any(w.kind == "symlink-outside" and "followed" in w.message for w in report.warnings)


@pytest.mark.parametrize("backend", ["tar", "zip", "lmdb", "arrow", "hdf5"])
def test_long_unicode_and_undecodable_names_round_trip(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    deep = src / "cls" / ("d" * 200) / ("e" * 200)  # keys longer than LMDB's 511-byte limit
    deep.mkdir(parents=True)
    names = [deep / ("f" * 240 + ".jpg"), src / "cls" / "Ünïcødé ✓ 🐱 spaced name.JPG"]
    for p in names:
        p.write_bytes(_good())
    with open(os.fsencode(src / "cls") + b"/latin1-\xe9\xff.png", "wb") as f:
        f.write(_encode(Image.new("L", (3, 3)), "PNG"))
    convert(src, tmp_path / "p", backend)
    extract(tmp_path / "p", tmp_path / "out")
    for p in names:
        assert (tmp_path / "out" / p.relative_to(src)).read_bytes() == p.read_bytes()
    assert Path(
        os.fsdecode(os.fsencode(tmp_path / "out" / "cls") + b"/latin1-\xe9\xff.png")
    ).exists()
