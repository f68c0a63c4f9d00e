"""Remote packs against a local S3-compatible server (moto), as ratios measured in one run.

    python benchmarks/remote.py --images 8000 --work data/bench

Starts moto's ThreadedMotoServer on 127.0.0.1, uploads a tar pack of N small PNGs, then measures
(medians of --repeat, alternating):
- a sequential pass over the remote pack against `fs.get` of the same data files (target >= 0.8x);
- requests per random sample (target <= 1) and per `read_many` of 64 random samples of one shard
  (target <= 8), counted from the server's request log;
- `pack stage` against `fs.get` of every file of the pack (target >= 0.9x), and a stage resumed
  after a partial copy (bytes transferred);
- a warm open: requests and index bytes transferred (target: <= 2 small requests, no index).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import requests

import packer
from common import make_png_tree, median_time
from packer.storage.stage import stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8000)
    parser.add_argument("--work", type=Path, default=Path("data/bench"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_RECORDER_FILEPATH", str(args.work / "moto-recording"))
    import s3fs
    from moto.server import ThreadedMotoServer

    src = make_png_tree(args.work / f"png-{args.images}", images=args.images)
    local = args.work / f"remote-{args.images}.pack"
    if not (local / "manifest.json").is_file():
        packer.convert(src, local, "tar", shard_size="4MB", force=True)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    options: dict[str, Any] = {
        "key": "x", "secret": "x", "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }  # fmt: skip
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
    requests.put(f"{endpoint}/bench").raise_for_status()
    fs.put(str(local), "bench/p.pack", recursive=True)
    url = "s3://bench/p.pack"
    data_names = [d.name for d in packer.open_pack(local).manifest.data_files]
    data_bytes = sum((local / n).stat().st_size for n in data_names)
    all_files = [p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()]
    all_files = [f for f in all_files if not f.startswith(".packer-state")]
    tmp = Path(tempfile.mkdtemp(prefix="packer-remote-bench-"))
    cache = tmp / "cache"

    def log(action: str) -> list[dict[str, Any]]:
        r = requests.request(
            "GET" if action == "download" else "POST",
            f"{endpoint}/moto-api/recorder/{action}-recording",
        )
        r.raise_for_status()
        return (
            [json.loads(x) for x in r.text.splitlines() if x.strip()]
            if action == "download"
            else []
        )

    pack = packer.open_pack(url, storage_options=options, cache_dir=cache)
    times: dict[str, list[float]] = {"get_data": [], "iterate": [], "get_all": [], "stage": []}
    target, staged = tmp / "get", tmp / "staged.pack"
    for _ in range(args.repeat):
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        times["get_data"].append(median_time(
            lambda: fs.get([f"bench/p.pack/{n}" for n in data_names], [str(target / n) for n in data_names]), 1
        )[0])  # fmt: skip
        times["iterate"].append(median_time(lambda: sum(len(s.data) for s in pack), 1)[0])
        shutil.rmtree(target)
        for name in all_files:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
        times["get_all"].append(median_time(
            lambda: fs.get([f"bench/p.pack/{n}" for n in all_files], [str(target / n) for n in all_files]), 1
        )[0])  # fmt: skip
        shutil.rmtree(staged, ignore_errors=True)
        times["stage"].append(
            median_time(lambda: stage(url, staged, storage_options=options), 1)[0]
        )
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}

    log("start")
    log("reset")
    picks = np.random.default_rng(0).permutation(len(pack))[:200].tolist()
    for i in picks:
        pack.read(i)
    random_requests = len(log("download")) / len(picks)
    log("reset")
    rows = np.asarray(pack.index.locations[:, 0])
    shard = np.flatnonzero(rows == rows[len(rows) // 2])
    pack.read_many(np.random.default_rng(1).choice(shard, min(64, len(shard)), replace=False))
    batch_requests = len(log("download"))
    log("reset")
    packer.open_pack(url, storage_options=options, cache_dir=cache).close()
    warm = log("download")
    index_gets = [r for r in warm if "/index/" in r["url"]]

    # a stage cut off after half the data files, then resumed
    staged = tmp / "resumed.pack"
    partial = staged.parent / f".{staged.name}.packer-partial"
    shutil.rmtree(staged, ignore_errors=True)
    partial.mkdir(parents=True, exist_ok=True)
    for n in data_names[: len(data_names) // 2]:
        shutil.copyfile(local / n, partial / n)
    resumed = stage(url, staged, storage_options=options)
    log("stop")
    server.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({
        "images": args.images, "data_files": len(data_names), "data_mb": round(data_bytes / 1e6, 1),
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "iterate_vs_fs_get": round(med["get_data"] / med["iterate"], 2),
        "stage_vs_fs_get": round(med["get_all"] / med["stage"], 2),
        "requests_per_random_sample": random_requests,
        "requests_for_64_random_in_one_shard": batch_requests,
        "warm_open_requests": len(warm), "warm_open_index_requests": len(index_gets),
        "resumed_stage_bytes": resumed.bytes_copied, "pack_bytes": resumed.bytes_total,
        "runs": {k: [round(x, 3) for x in v] for k, v in times.items()},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
