"""DataLoader throughput with JPEG decoding, per backend vs an ImageFolder-style folder dataset.

    python benchmarks/dataloader.py --images 20000 --work data/bench [--labels-pack data/bench/tiny-big.pack]

Per system, in one run, interleaved, median of --repeat passes: a torch DataLoader (2 workers,
batch 64) decoding every image to a C x H x W uint8 tensor. The folder baseline opens files by path
(what torchvision's ImageFolder does). Also: the label-only pass over a big pack, and the private
memory (USS) of 2 workers with ``in_memory=True`` vs without.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import packer
from packer.pytorch import PackDataset, PackIterableDataset
from packer.source.scanner import scan_tree


def _write_jpegs(args: tuple[Path, int, int, int]) -> None:
    root, label, count, size = args
    rng = np.random.default_rng(label)
    folder = root / f"class_{label:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:size, 0:size]
    for i in range(count):
        base = np.stack([(x + i) % 256, (y * (label + 1)) % 256, (x * y) % 256], axis=-1)
        pixels = np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=90)
        (folder / f"{i:06d}.jpg").write_bytes(buf.getvalue())


def make_jpeg_tree(root: Path, images: int, size: int) -> Path:
    if (root / ".complete").exists():
        return root
    classes = 20
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(_write_jpegs, [(root, c, images // classes, size) for c in range(classes)])
    (root / ".complete").write_text("ok")
    return root


class FolderDataset(Dataset[Any]):
    """The ImageFolder way: a list of paths, PIL open + convert per item."""

    def __init__(self, root: Path) -> None:
        scan = scan_tree(root)
        self.paths = [str(root / p) for p in scan.paths]
        self.labels = scan.labels.tolist()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as im:
            arr = np.asarray(im.convert("RGB"))
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))), self.labels[i]


def loader_pass(ds: Any, expected: int) -> float:
    loader = DataLoader(
        ds, batch_size=64, num_workers=2, shuffle=False, multiprocessing_context="fork"
    )
    start = time.perf_counter()
    n = 0
    for images, labels in loader:
        n += len(labels)
        assert images.dtype == torch.uint8
    elapsed = time.perf_counter() - start
    assert n == expected, f"read {n} samples, expected {expected}"
    return n / elapsed


def worker_uss(ds: Any) -> list[float]:
    """Private (unshared) MB of each of 2 persistent workers after a full pass."""
    import psutil

    loader = DataLoader(
        ds, batch_size=64, num_workers=2, persistent_workers=True, multiprocessing_context="fork"
    )
    for _ in loader:
        pass
    kids = psutil.Process().children()
    uss = [k.memory_full_info().uss / 2**20 for k in kids]
    del loader
    return uss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--work", type=Path, default=Path("data/bench"))
    ap.add_argument("--formats", default="tar,zip,memmap,lmdb,hdf5,arrow,parquet")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--labels-pack", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    src = make_jpeg_tree(args.work / f"jpeg-{args.images}", args.images, args.size)
    n = len(scan_tree(src))
    datasets: dict[str, Any] = {"folder": FolderDataset(src)}
    for fmt in args.formats.split(","):
        dst = args.work / f"dl-{fmt}"
        if not dst.exists():
            packer.convert(src, dst, fmt)
        datasets[fmt] = PackDataset(dst, decode="tensor")
    rates: dict[str, list[float]] = {k: [] for k in datasets}
    ratios: dict[str, list[float]] = {k: [] for k in datasets}
    for r in range(args.repeat):
        names = list(datasets)
        names = names[r % len(names) :] + names[: r % len(names)]  # rotate the order per round
        round_rates = {name: loader_pass(datasets[name], n) for name in names}
        for name, rate in round_rates.items():
            rates[name].append(rate)
            ratios[name].append(rate / round_rates["folder"])
        print(
            f"round {r}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in round_rates.items()),
            file=sys.stderr,
        )
    result: dict[str, Any] = {
        "images": n,
        "image_size": args.size,
        "mean_jpeg_kb": round(sum(p.stat().st_size for p in src.rglob("*.jpg")) / n / 1000, 1),
        "images_per_s": {k: round(statistics.median(v), 1) for k, v in rates.items()},
        "vs_folder": {k: round(statistics.median(v), 3) for k, v in ratios.items()},
    }
    mem_pack = args.work / "dl-memmap"
    if mem_pack.exists():
        result["worker_uss_mb"] = {
            "in_memory": worker_uss(PackDataset(mem_pack, decode="tensor", in_memory=True)),
            "default": worker_uss(PackDataset(mem_pack, decode="tensor")),
            "pack_data_mb": round(
                sum(f.stat().st_size for f in mem_pack.glob("shard-*")) / 2**20, 1
            ),
        }
    if args.labels_pack is not None:
        big = PackIterableDataset(args.labels_pack, labels_only=True, shuffle=False)
        start = time.perf_counter()
        count = sum(1 for _ in big)
        iter_s = time.perf_counter() - start
        start = time.perf_counter()
        labels = packer.open_pack(args.labels_pack).labels
        counts = np.bincount(labels)
        array_s = time.perf_counter() - start
        result["label_only"] = {
            "samples": count,
            "iterate_seconds": round(iter_s, 3),
            "numpy_bincount_seconds": round(array_s, 4),
            "classes": len(counts),
        }
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
