"""`pack inspect --stats` (compared with Pillow) and `--preview` (the PNG itself is checked)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from oddimages import VALID, encode, noise
from packer import convert
from packer.cli.main import app
from packer.images.transforms import Transform
from packer.read.preview import PAD, contact_sheet
from packer.read.stats import NOT_AN_IMAGE, pack_stats, sample_header

EXTRA = {  # modes the corpus lacks
    "png-1bit": ("png", lambda: encode(noise(9, 7, "L").convert("1"), "PNG")),
    "png-grey": ("png", lambda: encode(noise(9, 7, "L"), "PNG")),
    "png-grey-alpha": ("png", lambda: encode(noise(9, 7, "RGBA").convert("LA"), "PNG")),
    "png-palette": ("png", lambda: encode(noise(9, 7).convert("P"), "PNG")),
}


@pytest.mark.parametrize("name", sorted({**VALID, **EXTRA}))
def test_header_reading_agrees_with_pillow(name: str) -> None:
    data = {**VALID, **EXTRA}[name][1]()
    with Image.open(io.BytesIO(data)) as im:
        expected = (im.format, im.mode, im.width, im.height)
    assert sample_header(data) == expected


def test_not_an_image() -> None:
    assert sample_header(b"\x00\x01 raw audio") == (NOT_AN_IMAGE, "-", 0, 0)


def test_a_huge_image_is_described_from_its_header_not_refused() -> None:
    import struct

    # a BMP header declaring 30000 x 30000 pixels (10x Pillow's bomb limit), no pixel data
    info = struct.pack("<IiiHHIIiiII", 40, 30000, 30000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    data = b"BM" + struct.pack("<IHHI", 54 + 3 * 30000 * 30000, 0, 0, 54) + info
    before = Image.MAX_IMAGE_PIXELS
    assert sample_header(data) == ("BMP", "RGB", 30000, 30000)
    assert before == Image.MAX_IMAGE_PIXELS  # restored


@pytest.fixture(scope="module")
def odd_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes of odd images (every valid case once, in turn) plus one non-image sample."""
    root = tmp_path_factory.mktemp("odd") / "tree"
    for i, (name, (ext, make)) in enumerate(sorted({**VALID, **EXTRA}.items())):
        cls = ("a", "b")[i % 2]
        (root / cls).mkdir(parents=True, exist_ok=True)
        (root / cls / f"{name}.{ext}").write_bytes(make())
    (root / "b" / "sound.wav").write_bytes(b"RIFF....WAVEfmt ")
    return root


def test_stats_match_pillow_per_class(odd_tree: Path, tmp_path: Path) -> None:
    pack = convert(odd_tree, tmp_path / "p", "zip", extensions="*", validate="none").path
    stats = pack_stats(pack)
    for c in stats["classes"]:
        formats: dict[str, int] = {}
        modes: dict[str, int] = {}
        widths, sizes = [], []
        for f in sorted((odd_tree / c["name"]).iterdir()):
            data = f.read_bytes()
            sizes.append(len(data))
            try:
                with Image.open(io.BytesIO(data)) as im:
                    fmt, mode, w = str(im.format), im.mode, im.width
                widths.append(w)
            except OSError:
                fmt, mode = NOT_AN_IMAGE, "-"
            formats[fmt] = formats.get(fmt, 0) + 1
            modes[mode] = modes.get(mode, 0) + 1
        assert c["samples"] == len(sizes)
        assert c["formats"] == formats and c["modes"] == modes
        assert (c["width"]["min"], c["width"]["max"]) == (min(widths), max(widths))
        assert c["width"]["median"] == float(np.median(widths))
        assert sum(c["width"]["histogram"]) == len(widths)  # the non-image has no width
        assert c["bytes"]["median"] == float(np.median(sizes))
    assert stats["overall"]["samples"] == sum(c["samples"] for c in stats["classes"])


def test_stats_of_a_pixel_pack_need_no_reading(odd_tree: Path, tmp_path: Path) -> None:
    t = Transform(size=(8, 6), mode="RGB")
    pack = convert(odd_tree, tmp_path / "p", "memmap", transform=t, on_error="skip").path
    for name in (tmp_path / "p").glob("shard-*"):
        name.unlink()  # described from the manifest's shape alone
    overall = pack_stats(pack)["overall"]
    assert overall["formats"] == {"pixels": overall["samples"]} and overall["modes"] == {
        "RGB": overall["samples"]
    }
    assert overall["width"]["min"] == overall["width"]["max"] == 6
    assert overall["bytes"]["max"] == 8 * 6 * 3


def test_cli_stats_json_and_text(odd_tree: Path, tmp_path: Path) -> None:
    pack = convert(odd_tree, tmp_path / "p", "tar", extensions="*", validate="none").path
    result = CliRunner().invoke(app, ["inspect", str(pack), "--stats", "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["stats"] == json.loads(json.dumps(pack_stats(pack)))
    text = CliRunner().invoke(app, ["inspect", str(pack), "--stats"]).stdout
    assert "formats: " in text and "JPEG" in text and NOT_AN_IMAGE in text


def test_preview_is_a_row_per_class_and_deterministic(odd_tree: Path, tmp_path: Path) -> None:
    pack = convert(odd_tree, tmp_path / "p", "zip", extensions="*", validate="none").path
    first = contact_sheet(pack, tmp_path / "one.png", per_class=3, thumb=32)
    again = contact_sheet(pack, tmp_path / "two.png", per_class=3, thumb=32)
    assert (tmp_path / "one.png").read_bytes() == (tmp_path / "two.png").read_bytes()
    assert first == again and first["rows"] == 2 and first["columns"] == 3
    with Image.open(tmp_path / "one.png") as im:
        assert im.format == "PNG" and im.size == (first["width"], first["height"])
        assert im.height == 2 * (32 + PAD) + PAD
        grid = np.asarray(im.convert("RGB"))
    row = grid[PAD : PAD + 32]  # the first row holds real thumbnails, not the background
    assert (row != 255).any()
    only_b = contact_sheet(pack, tmp_path / "b.png", per_class=2, classes=["b"], thumb=16)
    assert only_b["rows"] == 1
    with pytest.raises(Exception, match="no class 'zebra'"):
        contact_sheet(pack, tmp_path / "z.png", classes=["zebra"])


def test_preview_of_pixel_packs_and_of_packs_without_images(odd_tree: Path, tmp_path: Path) -> None:
    t = Transform(size=(8, 6), mode="L")
    pixels = convert(odd_tree, tmp_path / "px", "memmap", transform=t, on_error="skip").path
    result = CliRunner().invoke(
        app, ["inspect", str(pixels), "--preview", str(tmp_path / "px.png"), "--per-class", "2"]
    )
    assert result.exit_code == 0, result.stderr
    assert "preview: 2 class row(s)" in result.stdout
    with Image.open(tmp_path / "px.png") as im:
        assert im.size[1] == 2 * (96 + PAD) + PAD
    sounds = tmp_path / "sounds"
    for cls in ("x", "y"):
        (sounds / cls).mkdir(parents=True)
        (sounds / cls / "a.wav").write_bytes(b"RIFF....WAVE")
    pack = convert(sounds, tmp_path / "s", "tar", extensions="wav").path
    result = CliRunner().invoke(app, ["inspect", str(pack), "--preview", str(tmp_path / "s.png")])
    assert result.exit_code == 2 and "--preview needs images" in result.stderr
    assert not (tmp_path / "s.png").exists()
