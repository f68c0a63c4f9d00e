"""Library calls leave the caller's process as they found it: Pillow's pixel limit, warning
filters and the fork server's preload list belong to the program that imports packer."""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from oddimages import VALID, encode, noise
from packer import api
from packer.images.opening import PixelLimitError, open_image, open_unchecked
from packer.images.transforms import Transform

CALLERS_LIMIT = 1_000_000  # pixels: what "the caller" set (the images here are smaller)


@pytest.fixture
def callers_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Set the caller's limit and watch it from another thread while the test runs; yields the
    values seen that were not the caller's (there must be none)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", CALLERS_LIMIT)
    seen: list[object] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if Image.MAX_IMAGE_PIXELS != CALLERS_LIMIT:
                seen.append(Image.MAX_IMAGE_PIXELS)
            stop.wait(0.0005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join()
    assert Image.MAX_IMAGE_PIXELS == CALLERS_LIMIT


def images() -> list[bytes]:
    """Every valid odd image, plus plain photos of 64 x 48 = 3,072 pixels (over the limit)."""
    return [make() for _, make in VALID.values()] + [
        encode(noise(64, 48, seed=s), fmt) for s, fmt in enumerate(["JPEG", "PNG", "WEBP", "BMP"])
    ]


def test_decoding_in_four_threads_leaves_the_callers_limit(callers_limit: list[object]) -> None:
    transform = Transform.build(size="16x16", mode="RGB")
    assert transform is not None
    data = images()
    errors: list[BaseException] = []
    filters = list(warnings.filters)

    def decode() -> None:
        try:
            for _ in range(20):
                for d in data:
                    assert transform.pixels(d, max_pixels=10**8).shape == (16, 16, 3)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=decode) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert callers_limit == []
    assert warnings.filters == filters


def test_the_limit_passed_in_decides_not_pillows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--max-pixels`` above the caller's Pillow limit works, and the limit is left as set."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    big = encode(noise(64, 48), "PNG")  # 3,072 pixels: over the caller's 1,000
    with open_image(big, max_pixels=4_000) as im:
        im.load()
        assert im.size == (64, 48)
    with pytest.raises(PixelLimitError, match=r"64 x 48 = 3,072 pixels is over the 3,000"):
        open_image(big, max_pixels=3_000)
    with open_unchecked(big) as im:  # headers only (inspect --stats): no limit at all
        assert im.size == (64, 48)
    (tmp_path / "src" / "a").mkdir(parents=True)
    (tmp_path / "src" / "a" / "big.png").write_bytes(big)
    pixels = Transform.build(size="8x8", mode="L")
    report = api.convert(
        tmp_path / "src", tmp_path / "p.pack", format="memmap", transform=pixels, max_pixels=4_000
    )
    assert report.num_samples == 1
    assert Image.MAX_IMAGE_PIXELS == 1_000


def test_convert_and_deep_verify_leave_the_callers_limit(
    tmp_path: Path, callers_limit: list[object]
) -> None:
    src = tmp_path / "src"
    for label in ("cat", "dog"):
        (src / label).mkdir(parents=True)
        for i in range(6):
            (src / label / f"{i}.png").write_bytes(encode(noise(64, 48, seed=i), "PNG"))
    report = api.convert(src, tmp_path / "p.pack", format="zip", validate="full", workers=1)
    assert report.num_samples == 12  # 3,072-pixel images pass: the default --max-pixels applies
    check = api.verify_pack(tmp_path / "p.pack", deep=True, workers=1)
    assert check.ok, check.problems
    refused = api.verify_pack(tmp_path / "p.pack", deep=True, workers=1, max_pixels=3_000)
    assert not refused.ok and "3,072 pixels is over the 3,000" in refused.problems[0].message
    resized = api.convert(
        src,
        tmp_path / "r.pack",
        format="memmap",
        transform=Transform.build(size="8x8", mode="RGB"),
        workers=2,
    )
    assert resized.num_samples == 12
    assert callers_limit == []


def test_the_library_leaves_the_fork_servers_preload_list(tmp_path: Path) -> None:
    """In a fresh interpreter: the preload list is read once, when the server starts."""
    code = """
import multiprocessing.forkserver as fs, sys
from pathlib import Path
from PIL import Image
import packer
before = list(fs._forkserver._preload_modules)
src = Path(sys.argv[1])
(src / "a").mkdir(parents=True)
for i in range(4):
    Image.new("RGB", (4, 4), (i, 0, 0)).save(src / "a" / f"{i}.png")
packer.convert(src, src.parent / "p.pack", format="tar", workers=2, samples_per_shard=2)
print(before == fs._forkserver._preload_modules, Image.MAX_IMAGE_PIXELS)
"""
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "src")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["True", str(Image.MAX_IMAGE_PIXELS)]
