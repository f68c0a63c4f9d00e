"""Open time and memory of a pack with a million samples: the index must be mapped, not loaded.

    python benchmarks/open_index.py --samples 1000000 --work data/bench

Packs a tree of N tiny valid PNGs once (reused), then in fresh subprocesses measures: time to open
the pack, RSS growth after open, time for 1000 key lookups, and a label-only pass over all N labels.
Also reports the peak RSS of `pack convert` for N/10 and N samples (it must stay flat in N).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from common import make_tiny_file_tree

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import packer
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
before = rss()
t = time.perf_counter()
pack = packer.open_pack(sys.argv[1])
open_s = time.perf_counter() - t
after_open = rss()
first = pack[0]
t = time.perf_counter()
n = len(pack)
keys = [pack.key(i) for i in range(0, n, max(1, n // 1000))]
t = time.perf_counter()
for k in keys:
    pack.index_of(k)
lookup_us = (time.perf_counter() - t) / len(keys) * 1e6
t = time.perf_counter()
counts = np.bincount(pack.labels, minlength=len(pack.classes))
labels_s = time.perf_counter() - t
assert counts.sum() == n
print(json.dumps({"open_ms": open_s * 1e3, "rss_after_open_mb": after_open - before,
                  "rss_total_mb": rss(), "key_lookup_us": lookup_us, "label_pass_ms": labels_s * 1e3,
                  "samples": n}))
"""


def convert_peak_rss(src: Path, dst: Path) -> float:
    import shutil

    shutil.rmtree(dst, ignore_errors=True)
    pack = Path(sys.executable).with_name("pack")
    out = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "%M",
            str(pack),
            "convert",
            str(src),
            str(dst),
            "-q",
            "--validate",
            "none",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, default=Path("data/bench"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    small_n = args.samples // 10
    big = make_tiny_file_tree(args.work / f"tiny-{args.samples}", files=args.samples)
    small = make_tiny_file_tree(args.work / f"tiny-{small_n}", files=small_n)
    rss_small = convert_peak_rss(small, args.work / "tiny-small.pack")
    rss_big = convert_peak_rss(big, args.work / "tiny-big.pack")
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", PROBE, str(args.work / "tiny-big.pack")],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(args.repeat)
    ]
    result = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    result["convert_peak_rss_mb"] = {str(small_n): rss_small, str(args.samples): rss_big}
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
