"""Spreading a convert: local workers, a Dask LocalCluster, parts + merge, memory in N.

    python benchmarks/scale_out.py --work data/bench              # all measurements
    python benchmarks/scale_out.py --work data/bench --only rss   # one of: workers dask parts rss merge

Each comparison runs its contenders alternately in one run (the machine is shared and noisy) and
reports medians and their ratio; every pack written is checked byte-identical to the reference.

- workers: ``convert --workers 2`` vs ``--workers 1`` on 60k PNGs of ~2 KB (``--shard-size 16MB``),
           as a byte copy (tar) and as a decoding convert (resize to 16x16, memmap).
- dask:    ``--executor dask`` (LocalCluster, 2 single-threaded worker processes, started once)
           vs a local pool of 2 workers, same tree and options.
- parts:   ``plan`` + 4 parts one after another + ``merge`` vs one ``convert``, 1 worker each.
- rss:     peak RSS of ``pack plan``, ``pack convert`` and ``convert --update`` (one file added)
           at N/10 and N tiny files.
- merge:   merge of N tiny samples from 16 parts: time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import make_png_tree, make_tiny_file_tree
from packer.api import Transform, convert, convert_part, merge, save_plan
from packer.testing import tree_digest


def alternate(contenders: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds of each contender, run in turn ``rounds`` times."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def bench_workers(tree: Path, out: Path, rounds: int) -> dict[str, Any]:
    """A byte copy (tar) and a decoding convert (resize to 16x16 into memmap), 1 vs 2 workers."""
    result: dict[str, Any] = {}
    cases: dict[str, tuple[str, dict[str, Any]]] = {
        "copy": ("tar", {"shard_size": "16MB"}),
        "resize": (
            "memmap",
            {"shard_size": "16MB", "transform": Transform(size=(16, 16), mode="RGB")},
        ),
    }
    for case, (fmt, opts) in cases.items():
        reference = convert(tree, fresh(out / "ref.pack"), fmt, workers=1, **opts).path
        medians = alternate(
            {
                f"{case} workers={n}": lambda n=n, fmt=fmt, opts=opts: convert(
                    tree, out / f"w{n}.pack", fmt, workers=n, force=True, **opts
                )
                for n in (1, 2)
            },
            rounds,
        )
        assert tree_digest(out / "w2.pack") == tree_digest(reference)
        result.update(medians)
        result[f"{case} speedup"] = medians[f"{case} workers=1"] / medians[f"{case} workers=2"]
    return result


def bench_dask(tree: Path, out: Path, rounds: int) -> dict[str, Any]:
    from packer.run.cluster import dask_executor

    opts: dict[str, Any] = {"shard_size": "16MB"}
    reference = tree_digest(convert(tree, fresh(out / "ref.pack"), "tar", workers=1, **opts).path)
    with dask_executor(None, 2) as executor:
        medians = alternate(
            {
                "local pool (2)": lambda: convert(
                    tree, out / "pool.pack", "tar", workers=2, force=True, **opts
                ),
                "dask LocalCluster (2)": lambda: convert(
                    tree, out / "dask.pack", "tar", executor=executor, force=True, **opts
                ),
            },
            rounds,
        )
    assert tree_digest(out / "dask.pack") == reference
    return {
        **medians,
        "dask/pool speed": medians["local pool (2)"] / medians["dask LocalCluster (2)"],
    }


def bench_parts(tree: Path, out: Path, rounds: int) -> dict[str, Any]:
    opts: dict[str, Any] = {"shard_size": "4MB"}

    def parts() -> None:
        save_plan(tree, out / "plan", "tar", force=True, **opts)
        folders = [out / f"part{i}" for i in range(4)]
        for i, folder in enumerate(folders):
            convert_part(out / "plan", (i, 4), folder, workers=1, force=True)
        merge(out / "plan", folders, out / "merged.pack", force=True)

    medians = alternate(
        {
            "one convert": lambda: convert(
                tree, out / "one.pack", "tar", workers=1, force=True, **opts
            ),
            "plan + 4 parts + merge": parts,
        },
        rounds,
    )
    assert tree_digest(out / "merged.pack") == tree_digest(out / "one.pack")
    return {**medians, "parts/one time": medians["plan + 4 parts + merge"] / medians["one convert"]}


#: The child's own peak: ``VmHWM`` of its address space. (``ru_maxrss`` would not do: Linux
#: carries the forked parent's peak over exec, so every child would report at least the parent's.)
HWM = """
def peak_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
"""

PEAK = (
    HWM
    + """
import sys, json
from packer.api import convert, save_plan
what, src, dst = sys.argv[1:4]
if what == "plan":
    save_plan(src, dst, "memmap", force=True)
elif what == "update":
    convert(src, dst, "memmap", update=True, workers=1)
else:
    convert(src, dst, "memmap", force=True, workers=1)
print(json.dumps(peak_mb()))
"""
)


def peak_rss_mb(what: str, src: Path, dst: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PEAK, what, str(src), str(dst)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def bench_rss(work: Path, out: Path, n: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for count in (n // 10, n):
        tree = make_tiny_file_tree(work / f"tiny-{count}", files=count)
        result[f"plan peak MB ({count})"] = peak_rss_mb("plan", tree, fresh(out / "plan"))
        result[f"convert peak MB ({count})"] = peak_rss_mb("convert", tree, out / "rss.pack")
        added = tree / "c0500" / "0000000-added.png"  # one new file mid-tree: an update
        shutil.copyfile(tree / "c0500" / "0000000.png", added)
        try:
            result[f"update peak MB ({count})"] = peak_rss_mb("update", tree, out / "rss.pack")
        finally:
            added.unlink()
    small, big = n // 10, n
    for what in ("convert", "update"):
        result[f"{what} peak ratio"] = (
            result[f"{what} peak MB ({big})"] / result[f"{what} peak MB ({small})"]
        )
    return result


MERGE = (
    HWM
    + """
import sys, json, time
from packer.api import merge
plan, dst, *parts = sys.argv[1:]
t = time.perf_counter()
merge(plan, parts, dst, force=True)
print(json.dumps([time.perf_counter() - t, peak_mb()]))
"""
)


def bench_merge(work: Path, out: Path, n: int) -> dict[str, Any]:
    tree = make_tiny_file_tree(work / f"tiny-{n}", files=n)
    save_plan(tree, fresh(out / "mplan"), "memmap", samples_per_shard=max(1, n // 64))
    folders = [out / f"mpart{i}" for i in range(16)]
    for i, folder in enumerate(folders):
        convert_part(out / "mplan", (i, 16), folder, workers=2, force=True)
    runs = []
    for _ in range(3):  # parts are copied into place when merge links; keep them for each round
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                MERGE,
                str(out / "mplan"),
                str(out / "merged.pack"),
                *map(str, folders),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "samples": n,
        "merge s (median of 3)": statistics.median(r[0] for r in runs),
        "merge peak MB": max(r[1] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("data/bench"))
    parser.add_argument("--images", type=int, default=60_000)
    parser.add_argument("--tiny", type=int, default=1_000_000, help="N for rss and merge")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=["workers", "dask", "parts", "rss", "merge"])
    args = parser.parse_args()
    out = args.work / "scale_out"
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    wanted = [args.only] if args.only else ["workers", "dask", "parts", "rss", "merge"]
    if {"workers", "dask", "parts"} & set(wanted):
        tree = make_png_tree(args.work / f"png-{args.images}", images=args.images, size=24)
    for name in wanted:
        if name == "workers":
            results[name] = bench_workers(tree, out, args.rounds)
        elif name == "dask":
            results[name] = bench_dask(tree, out, args.rounds)
        elif name == "parts":
            results[name] = bench_parts(tree, out, args.rounds)
        elif name == "rss":
            results[name] = bench_rss(args.work, out, args.tiny)
        else:
            results[name] = bench_merge(args.work, out, args.tiny)
        print(json.dumps({name: results[name]}, indent=1), flush=True)


if __name__ == "__main__":
    main()
