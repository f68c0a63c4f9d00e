"""Sequential raw reads (``Pack.iter_raw``) against the floor, at the pack's own layout.

    python benchmarks/sequential_read.py PACK [PACK ...] --repeat 7

The floor reads the very same payloads with nothing in the way: one ``mmap`` per data file and
the index's (file, offset, length) rows pulled once as Python ints, then a bare slicing loop. A
pack cut into many small shards (the default layout of a mid-size tree: ~2,000 samples a shard)
is the case this row exists for: the fast path must hold when index blocks span data files.
Rounds interleave the readers; medians are reported, and the ratio pack / floor per round.
"""

from __future__ import annotations

import argparse
import json
import mmap
import statistics
import time
from pathlib import Path

import numpy as np

import packer


def floor_pass(path: Path) -> float:
    with packer.open_pack(path) as pack:
        rows = np.asarray(pack.index.locations).tolist()
        names = [d.name for d in pack.manifest.data_files]
    files = [open(path / name, "rb") for name in names]  # noqa: SIM115 - closed below
    try:
        maps = [mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) for f in files]
        started = time.perf_counter()
        total = 0
        for f, off, n in rows:
            total += len(maps[f][off : off + n])
        seconds = time.perf_counter() - started
        for m in maps:
            m.close()
    finally:
        for f in files:
            f.close()
    return len(rows) / seconds


def pack_pass(path: Path) -> float:
    with packer.open_pack(path) as pack:
        n = len(pack)
        started = time.perf_counter()
        total = 0
        for data, _ in pack.iter_raw():
            total += len(data)
        return n / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("packs", type=Path, nargs="+")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    rows = []
    for path in args.packs:
        floor, reads, ratios = [], [], []
        for _ in range(args.repeat):
            f, p = floor_pass(path), pack_pass(path)
            floor.append(f)
            reads.append(p)
            ratios.append(p / f)
        with packer.open_pack(path) as pack:
            shards, n = len(pack.manifest.data_files), len(pack)
        rows.append(
            {
                "pack": str(path),
                "samples": n,
                "data_files": shards,
                "floor_samples_per_s": round(statistics.median(floor)),
                "iter_raw_samples_per_s": round(statistics.median(reads)),
                "ratio_to_floor": round(statistics.median(ratios), 3),
            }
        )
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
