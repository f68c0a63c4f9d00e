"""Run `pack bench` on the two reference profiles and keep the JSON and plots.

    python benchmarks/bench_profiles.py --work data/bench --out data/bench-results

tiny:   60,000 random 32x32 PNGs (~2.5 KB) in 10 classes
medium:  4,000 ~400x350 JPEGs (~60-80 KB) in 10 classes
Both are generated deterministically (and reused); every format is measured beside the plain
folder, medians of --repeat rounds.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from common import make_png_tree


def _write_medium(args: tuple[Path, int, int]) -> None:
    root, label, count = args
    rng = np.random.default_rng(1000 + label)
    folder = root / f"class_{label:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        w, h = int(rng.integers(380, 420)), int(rng.integers(330, 370))
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([(x * (label + 1)) % 256, (y * 3 + i) % 256, (x * y) % 256], axis=-1)
        pixels = np.clip(base + rng.integers(-30, 30, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=88)
        (folder / f"img_{i:05d}.jpg").write_bytes(buf.getvalue())


def make_medium_tree(root: Path, images: int = 4000, classes: int = 10) -> Path:
    if (root / ".complete").exists():
        return root
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(_write_medium, [(root, c, images // classes) for c in range(classes)])
    (root / ".complete").write_text("ok")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("data/bench"))
    ap.add_argument("--out", type=Path, default=Path("data/bench-results"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profiles", default="tiny,medium")
    ap.add_argument("--decode", action="store_true", help="also time a DataLoader decode pass")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    trees = {
        "tiny": lambda: make_png_tree(args.work / "tree-60000", images=60_000),
        "medium": lambda: make_medium_tree(args.work / "medium-4000"),
    }
    pack = Path(sys.executable).with_name("pack")
    for name in args.profiles.split(","):
        tree = trees[name]()
        cmd = [
            str(pack),
            "bench",
            str(tree),
            "--formats",
            "all",
            "--repeat",
            str(args.repeat),
            "--json",
            str(args.out / f"bench-{name}.json"),
            "--plot",
            str(args.out / f"bench-{name}.png"),
            "-q",
        ]
        if args.decode:
            cmd.append("--decode")
        print("$", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
