"""Test trees with the awkward cases real datasets have, and independent oracles for them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from packer.demo import encode, render

# -- a small tree with the awkward cases a real dataset has -------------------------------------

EDGE_FILES = (
    ("cat/a.jpg", "JPEG"),
    ("cat/b.png", "PNG"),
    ("cat/img.001.jpg", "JPEG"),  # dots in the stem: WebDataset would split the key
    ("cat/nested/deeper/c.jpg", "JPEG"),  # nested folders belong to the top-level class
    ("cat/UPPER.JPG", "JPEG"),
    ("cat/star.png", "PNG"),  # names differing only by extension: keys keep the extension
    ("cat/star.jpg", "JPEG"),
    ("dog/with space.jpg", "JPEG"),
    ("dog/ünïcödé 🐱.png", "PNG"),
    ("dog/100%.jpg", "JPEG"),
    (
        "dog-x/z.jpg",
        "JPEG",
    ),  # sorts between "dog" and "dog/..." keys: order must stay ImageFolder's
)
IGNORED_FILES = (
    "cat/.hidden.jpg",
    "cat/Thumbs.db",
    "cat/notes.txt",
    "dog/.DS_Store",
    "top-level.jpg",
)
EMPTY_CLASSES = ("empty",)


def make_edge_tree(root: Path, *, extra_per_class: int = 6, seed: int = 0) -> Path:
    """The edge cases above plus ``extra_per_class`` plain images per class, all real images."""
    rng = np.random.default_rng(seed)
    files = list(EDGE_FILES)
    for cls in ("cat", "dog", "dog-x"):
        files += [
            (f"{cls}/img_{i:03d}.{'png' if i % 3 == 0 else 'jpg'}", "PNG" if i % 3 == 0 else "JPEG")
            for i in range(extra_per_class)
        ]
    for rel, fmt in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(render(rel.split("/")[0], rng, 24 + int(rng.integers(0, 24))), fmt))
    for rel in IGNORED_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"not a sample")
    for cls in EMPTY_CLASSES:
        (root / cls).mkdir(parents=True, exist_ok=True)
    return root


#: torchvision.datasets.folder.IMG_EXTENSIONS, copied (not imported from packer: an oracle).
TORCHVISION_IMG_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)
_JUNK = {"thumbs.db", "desktop.ini", "__macosx", "$recycle.bin"}


def imagefolder_order(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """What torchvision's ImageFolder would list, re-implemented here as an independent oracle.

    ImageFolder's rule (sorted class folders, ``sorted(os.walk(followlinks=True))``, sorted names,
    ``name.lower().endswith(IMG_EXTENSIONS)``) with packer's documented differences: hidden files
    and folders and OS junk are left out.
    """

    def hidden(name: str) -> bool:
        return name.startswith(".") or name.lower() in _JUNK

    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not hidden(e.name))
    samples: list[tuple[str, int]] = []
    for label, cls in enumerate(classes):
        walked = []
        for dirpath, dirnames, names in os.walk(root / cls, followlinks=True):
            dirnames[:] = [d for d in dirnames if not hidden(d)]
            walked.append((dirpath, names))
        for dirpath, names in sorted(walked):
            for name in sorted(names):
                if hidden(name) or not name.lower().endswith(TORCHVISION_IMG_EXTENSIONS):
                    continue
                samples.append((Path(dirpath, name).relative_to(root).as_posix(), label))
    return classes, samples


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
