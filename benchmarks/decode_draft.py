"""Reduced-size JPEG decoding (Pillow ``draft``) vs full decoding, for decode + resize.

    python benchmarks/decode_draft.py --images 400 --size 64

Makes ``--images`` ~400x350 JPEGs (like the medium peer profile), then times
``Transform(size=..., draft=True/False).pixels`` over all of them, interleaved, median of --repeat.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time

import numpy as np
from PIL import Image

from packer.images.transforms import Transform


def make_jpegs(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w, h = int(rng.integers(380, 420)), int(rng.integers(330, 370))
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 // w, y * 255 // h, (x * y) % 256], axis=-1)
        pixels = np.clip(base + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    jpegs = make_jpegs(args.images)
    results: dict[str, list[float]] = {"full": [], "draft": []}
    for _ in range(args.repeat):
        for name, draft in (("full", False), ("draft", True)):
            t = Transform(
                size=(args.size, args.size), resize="center-crop", mode="RGB", draft=draft
            )
            start = time.perf_counter()
            for data in jpegs:
                t.pixels(data)
            results[name].append(len(jpegs) / (time.perf_counter() - start))
    full, draft = statistics.median(results["full"]), statistics.median(results["draft"])
    print(
        json.dumps(
            {
                "images": len(jpegs),
                "mean_jpeg_kb": round(sum(map(len, jpegs)) / len(jpegs) / 1000, 1),
                "target": f"{args.size}x{args.size}",
                "full_decode_images_per_s": round(full, 1),
                "draft_decode_images_per_s": round(draft, 1),
                "speedup": round(draft / full, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
