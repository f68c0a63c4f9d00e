"""Write the format-version-1 packs of tests/data/v1 (run with packer 0.1.0: see README.md)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from PIL import Image

import packer
from packer.api import convert


def main(out: Path, tree: Path) -> None:
    for label, cls in enumerate(["cat", "dog"]):
        (tree / cls).mkdir(parents=True, exist_ok=True)
        for j in range(3):
            image = Image.new("RGB", (8, 6), (40 * j, 100 * label, 7))
            fmt, ext = ("JPEG", "jpg") if j == 1 else ("PNG", "png")
            image.save(tree / cls / f"{cls}_{j}.{ext}", fmt)
    os.rename(tree / "dog" / "dog_2.png", tree / "dog" / os.fsdecode(b"d\xe9j\xe0-vu.png"))
    for fmt in ("tar", "zip"):
        convert(tree, out / f"{fmt}.pack", fmt, force=True)
    with packer.open_pack(out / "tar.pack") as pack:
        expected = [
            {
                "key": s.key.encode("utf-8", "surrogateescape").hex(),
                "label": s.label,
                "ext": s.ext,
                "sha256": hashlib.sha256(s.data).hexdigest(),
            }
            for s in pack
        ]
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
