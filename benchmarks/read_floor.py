"""packer's read paths vs the bare-bones floor, as ratios measured in one run.

    python benchmarks/read_floor.py data/bench/pack-memmap --reads 200000 --repeat 5

The floor is the simplest reader Python allows: one ``mmap`` of the data file and an offsets array
pulled as Python ints (what shared/bench calls mmap-blob). It reads the very same bytes as the pack.
Rounds interleave the readers; medians are reported.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pack", type=Path, help="a memmap pack (one shard)")
    ap.add_argument("--reads", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    pack = packer.open_pack(args.pack)
    assert len(pack.manifest.data_files) == 1, "use a single-shard pack"
    n = len(pack)
    loc = np.load(args.pack / "index" / "locations.npy")
    offsets = np.r_[loc[:, 1], loc[-1, 1] + loc[-1, 2]].astype(np.int64)
    labels_np = np.load(args.pack / "index" / "labels.npy")
    with open(args.pack / pack.manifest.data_files[0].name, "rb") as f:
        blob = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    order = np.random.default_rng(0).integers(0, n, args.reads).tolist()

    def floor_random() -> int:
        total = 0
        for i in order:
            total += len(blob[int(offsets[i]) : int(offsets[i + 1])])
        return total

    def floor_seq() -> int:
        total = 0
        for a in range(0, n, 4096):
            o = offsets[a : a + 4097].tolist()
            for j, _label in enumerate(labels_np[a : a + 4096].tolist()):
                total += len(blob[o[j] : o[j + 1]])
        return total

    def pack_read() -> int:
        read = pack.read
        return sum(len(read(i)) for i in order)

    def pack_getitem() -> int:
        return sum(len(pack[i].data) for i in order)

    def pack_iter() -> int:
        return sum(len(s.data) for s in pack)

    def pack_iter_raw() -> int:
        return sum(len(d) for d, _ in pack.iter_raw())

    passes = {
        "floor_random": (floor_random, args.reads),
        "pack.read": (pack_read, args.reads),
        "pack[i]": (pack_getitem, args.reads),
        "floor_sequential": (floor_seq, n),
        "iter(pack)": (pack_iter, n),
        "pack.iter_raw()": (pack_iter_raw, n),
    }
    rates: dict[str, list[float]] = {k: [] for k in passes}
    pack_read()  # warm maps and page cache
    for _ in range(args.repeat):
        for name, (fn, count) in passes.items():
            start = time.perf_counter()
            fn()
            rates[name].append(count / (time.perf_counter() - start))
    med = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "samples": n,
        "per_second": {k: round(v) for k, v in med.items()},
        "random_vs_floor": {
            k: round(med[k] / med["floor_random"], 3) for k in ("pack.read", "pack[i]")
        },
        "sequential_vs_floor": {
            k: round(med[k] / med["floor_sequential"], 3) for k in ("iter(pack)", "pack.iter_raw()")
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
