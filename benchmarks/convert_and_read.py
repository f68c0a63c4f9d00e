"""Convert throughput and raw read speed on a tree of many small images, as ratios in one run.

    python benchmarks/convert_and_read.py --images 60000 --work data/bench --formats tar,zip

Per format: convert time vs `tar -cf - SRC | cat >/dev/null` (warm cache), pack size vs source,
random and sequential raw reads per second vs reading the plain files. Medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import packer
from common import make_png_tree, median_time
from packer.source.scanner import scan_tree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=60_000)
    ap.add_argument("--work", type=Path, default=Path("data/bench"))
    ap.add_argument("--formats", default="tar,zip")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--random", type=int, default=20_000, help="random reads per pass")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    src = make_png_tree(args.work / f"tree-{args.images}", images=args.images)
    scan = scan_tree(src)
    paths = [str(src / p) for p in scan.paths]
    n = len(paths)
    source_bytes = sum(Path(p).stat().st_size for p in paths)
    rng = np.random.default_rng(0)
    order = rng.integers(0, n, args.random).tolist()

    def tar_pipe() -> None:
        subprocess.run(
            f"tar -cf - -C {src.parent} {src.name} | cat > /dev/null", shell=True, check=True
        )

    def read_files_random() -> int:
        total = 0
        for i in order:
            with open(paths[i], "rb") as f:
                total += len(f.read())
        return total

    def read_files_seq() -> int:
        total = 0
        for p in paths:
            with open(p, "rb") as f:
                total += len(f.read())
        return total

    tar_pipe()  # warm the page cache
    read_files_seq()
    tar_s, _ = median_time(tar_pipe, args.repeat)
    files_rand_s, _ = median_time(read_files_random, args.repeat)
    files_seq_s, _ = median_time(read_files_seq, args.repeat)
    print(
        f"{n} images, {source_bytes / 1e6:.1f} MB; tar|cat {tar_s:.2f} s; plain files: "
        f"{args.random / files_rand_s:,.0f} random/s, {n / files_seq_s:,.0f} seq/s",
        file=sys.stderr,
    )

    results: dict[str, object] = {
        "images": n,
        "source_bytes": source_bytes,
        "tar_pipe_seconds": tar_s,
        "files_random_per_s": args.random / files_rand_s,
        "files_seq_per_s": n / files_seq_s,
        "formats": {},
    }
    for fmt in args.formats.split(","):
        dst = args.work / f"pack-{fmt}"

        def do_convert(fmt: str = fmt, dst: Path = dst) -> None:
            shutil.rmtree(dst, ignore_errors=True)
            packer.convert(src, dst, fmt)

        convert_s, _ = median_time(do_convert, args.repeat)
        pack = packer.open_pack(dst)

        def seq(pack: packer.Pack = pack) -> None:
            total = sum(len(s.data) for s in pack)
            assert total == source_bytes, "sequential pass read the wrong bytes"

        def rand_read(pack: packer.Pack = pack) -> None:
            read = pack.read
            for i in order:
                read(i)

        def rand_item(pack: packer.Pack = pack) -> None:
            for i in order:
                pack[i]

        assert sum(len(pack.read(i)) for i in order) == sum(
            Path(paths[i]).stat().st_size for i in order
        )
        seq_s, _ = median_time(seq, args.repeat)
        rand_s, _ = median_time(rand_read, args.repeat)
        item_s, _ = median_time(rand_item, args.repeat)
        pack_bytes = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
        row = {
            "convert_seconds": convert_s,
            "convert_vs_tar_pipe": tar_s / convert_s,
            "size_vs_source": pack_bytes / source_bytes,
            "random_read_per_s": args.random / rand_s,
            "random_read_vs_files": files_rand_s / rand_s,
            "random_getitem_per_s": args.random / item_s,
            "sequential_per_s": n / seq_s,
            "sequential_vs_files": files_seq_s / seq_s,
        }
        results["formats"][fmt] = row  # type: ignore[index]
        print(
            f"{fmt:8s} convert {convert_s:.2f} s ({row['convert_vs_tar_pipe']:.2f}x tar|cat speed), "
            f"size {row['size_vs_source']:.3f}x, random read {row['random_read_per_s']:,.0f}/s "
            f"({row['random_read_vs_files']:.1f}x files), pack[i] {row['random_getitem_per_s']:,.0f}/s, "
            f"sequential {row['sequential_per_s']:,.0f}/s ({row['sequential_vs_files']:.1f}x files)",
            file=sys.stderr,
        )
        pack.close()
    out = json.dumps(results, indent=2, sort_keys=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(out + "\n")
    print(out)


if __name__ == "__main__":
    main()
