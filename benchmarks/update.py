"""`pack convert --update` on an unchanged tree against a bare stat walk of the same tree.

    python benchmarks/update.py --files 1000000 --work data/bench

Packs a tree of N tiny valid PNGs once (reused), then measures, alternating in one run (warm page
cache, medians of --repeat): a bare `os.scandir` walk that stats every file (the floor: an update
must at least see every file's size and mtime), `convert(update=True)` with nothing changed (it
must write nothing), `status()`, and once `status(checksum=True)` (reads every file: on machines
that page out idle cache, like ours, that is a disk read). Then one file is
added and the update that rewrites its shard is timed once. The target: an unchanged update within
1.5x of the stat walk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import packer
from common import make_tiny_file_tree, median_time


def stat_walk(root: Path) -> int:
    """Every regular file's size and mtime, as a bare Python walk gets them."""
    total = 0
    stack = [os.fspath(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    st = entry.stat()
                    total += st.st_size + (st.st_mtime_ns & 1)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("data/bench"))
    parser.add_argument("--format", default="tar")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    src = make_tiny_file_tree(args.work / f"tiny-{args.files}", files=args.files)
    dst = args.work / f"update-{args.files}-{args.format}.pack"
    t = time.perf_counter()
    if packer.status(src, dst).rebuild is not None:
        packer.convert(src, dst, args.format, force=True)
    first = time.perf_counter() - t

    def update() -> None:
        report = packer.convert(src, dst, args.format, update=True)
        assert report.update is not None and report.update["up_to_date"], report.update

    times: dict[str, list[float]] = {"stat_walk": [], "update": [], "status": []}
    for _ in range(args.repeat):  # alternate, so that drift on a shared machine hits both alike
        times["stat_walk"].append(median_time(lambda: stat_walk(src), 1)[0])
        times["update"].append(median_time(update, 1)[0])
        times["status"].append(median_time(lambda: packer.status(src, dst), 1)[0])
    checksum, _ = median_time(lambda: packer.status(src, dst, checksum=True), 1)
    extra = src / "class_extra"
    extra.mkdir(exist_ok=True)
    (extra / "new.png").write_bytes(next(src.glob("c0000/*.png")).read_bytes())
    try:
        t = time.perf_counter()
        report = packer.convert(src, dst, args.format, update=True)
        one_added = time.perf_counter() - t
    finally:
        shutil.rmtree(extra)
    packer.convert(src, dst, args.format, update=True)  # back to the tree's own pack
    medians = {name: sorted(values)[len(values) // 2] for name, values in times.items()}
    print(
        json.dumps(
            {
                "files": args.files,
                "format": args.format,
                "first_convert_s": round(first, 2),
                "median_s": {k: round(v, 3) for k, v in medians.items()},
                "update_over_stat_walk": round(medians["update"] / medians["stat_walk"], 2),
                "status_over_stat_walk": round(medians["status"] / medians["stat_walk"], 2),
                "status_checksum_s": round(checksum, 2),
                "one_class_added_s": round(one_added, 2),
                "one_class_added_shards_written": report.update["shards"]["to_rewrite"]
                if report.update
                else None,
                "shards": report.data_files,
                "runs": {k: [round(x, 3) for x in v] for k, v in times.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
