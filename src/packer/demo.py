"""A small, deterministic ImageFolder tree for ``make demo`` and the tests: shapes drawn with Pillow.

python -m packer.demo data/demo --per-class 80
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "stripes", "triangle")


def render(class_name: str, rng: np.random.Generator, size: int) -> Image.Image:
    bg = tuple(int(v) for v in rng.integers(0, 256, 3))
    fg = tuple(int(v) for v in rng.integers(0, 256, 3))
    im = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(im)
    lo, hi = sorted(int(v) for v in rng.integers(size // 8, size - size // 8, 2))
    hi = max(hi, lo + 4)
    if class_name == "circle":
        draw.ellipse((lo, lo, hi, hi), fill=fg)
    elif class_name == "square":
        draw.rectangle((lo, lo, hi, hi), fill=fg)
    elif class_name == "triangle":
        draw.polygon([(lo, hi), (hi, hi), ((lo + hi) // 2, lo)], fill=fg)
    else:
        step = max(2, (hi - lo) // 6)
        for x in range(0, size, 2 * step):
            draw.rectangle((x, 0, x + step - 1, size), fill=fg)
    noise = rng.integers(0, 24, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(np.clip(np.asarray(im, np.int16) + noise - 12, 0, 255).astype(np.uint8))


def encode(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        im.save(buf, "JPEG", quality=85)
    else:
        im.save(buf, "PNG", optimize=False)
    return buf.getvalue()


def make_demo_tree(
    root: str | Path,
    *,
    per_class: int = 80,
    size: int = 64,
    seed: int = 0,
    classes: tuple[str, ...] = CLASSES,
) -> Path:
    """Write ``per_class`` images per class (3 of 4 JPEG, 1 of 4 PNG) under ``root``; deterministic."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for class_name in classes:
        folder = root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            fmt = "PNG" if i % 4 == 3 else "JPEG"
            ext = "png" if fmt == "PNG" else "jpg"
            data = encode(render(class_name, rng, size), fmt)
            (folder / f"{class_name}_{i:04d}.{ext}").write_bytes(data)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-class", type=int, default=80)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make_demo_tree(args.root, per_class=args.per_class, size=args.size, seed=args.seed)
    n = args.per_class * len(CLASSES)
    print(f"wrote {n} images in {len(CLASSES)} classes under {args.root}")


if __name__ == "__main__":
    main()
