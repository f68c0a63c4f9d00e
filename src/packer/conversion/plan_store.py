"""A plan on disk (``pack plan``, the update state): ``plan.json`` plus one ``.npy`` per column,
named by the plan's digest, so that each SLURM array task or CI job reads the very same plan."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from packer._util.columns import Array, Column, blocks_of, store
from packer._util.files import write_file_synced
from packer._util.pathdisk import DiskPaths
from packer._util.pathtable import PathTable
from packer.conversion.plan import ARRAYS, PLAN_FORMAT, Plan, typed
from packer.errors import PackError
from packer.source.omissions import Finding, Omissions, Skipped
from packer.source.scanner import Scan


def save_plan_dir(plan: Plan, folder: Path) -> str:
    """Write the plan to ``folder`` (created; columns already there are kept); return its
    digest."""
    plan = plan.with_bounds()
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in plan._columns().items():
        target = folder / f"{name}.npy"
        if isinstance(arr, Column):
            if arr.path.resolve() != target.resolve():
                store(blocks_of(arr), arr.dtype.str, target)
        else:
            np.save(target, arr, allow_pickle=False)
    digest = plan.digest()
    doc = {**plan._document(), "digest": digest}
    write_file_synced(
        folder / "plan.json", (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()
    )
    return digest


def load_plan_dir(folder: Path, *, lazy: bool = False) -> tuple[Plan, str]:
    """The plan saved in ``folder`` and its digest (checked against the files). ``lazy``:
    its per-sample arrays stay on disk as columns (parts and merge of a large plan), else
    they are loaded."""
    try:
        doc = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
        if doc.get("format") != PLAN_FORMAT:
            raise ValueError(f"not a packer plan (format={doc.get('format')!r})")
        arrays: dict[str, Array] = {
            name: Column(folder / f"{name}.npy")
            if lazy and name != "bounds"
            else np.load(folder / f"{name}.npy", allow_pickle=False)
            for name in (*ARRAYS, "paths")
        }
        paths: PathTable
        if lazy:
            paths = DiskPaths.open(folder)
        else:
            blob = np.asarray(arrays["paths"]).tobytes()
            paths = PathTable.from_encoded(blob, np.asarray(arrays["path_offsets"]))
        created = doc["created_by"]
        scan = Scan(
            root=Path(doc["root"]),
            classes=list(doc["classes"]),
            paths=paths,
            labels=typed(arrays["labels"], "<i4"),
            full_keys=frozenset(doc["full_keys"]),
            skipped=[Skipped(**s) for s in doc["skipped"]],
            ignored=Omissions(
                [Skipped(**s) for s in doc["ignored"]], _counter(doc["ignored_by_reason"])
            ),
            findings=[Finding(**f) for f in doc["findings"]],
        )
        extensions = created["extensions"]
        plan = Plan(
            scan=scan,
            ext_names=list(doc["ext_names"]),
            ext_ids=typed(arrays["ext_ids"], "<u2"),
            backend_name=doc["backend"]["name"],
            backend_options=dict(doc["backend"]["options"]),
            pixel_shape=tuple(doc["pixel_shape"]) if doc["pixel_shape"] else None,
            transform=doc["transform"],
            validate=created["validate"],
            on_error=doc["on_error"],
            max_pixels=int(created["max_pixels"]),
            shard_size=created["shard_size"],
            samples_per_shard=created["samples_per_shard"],
            extensions=None if extensions == "*" else frozenset(extensions),
            symlinks=created["symlinks"],
            from_list=created.get("from_list"),
            cut=created.get("cut", "fixed"),
            sizes=typed(arrays["sizes"], "<i8"),
            bounds=[(int(a), int(b)) for a, b in np.asarray(arrays["bounds"]).tolist()],
            workdir=folder if lazy else None,
        )
    except FileNotFoundError as exc:
        raise PackError(
            f"{folder}: not a plan ({exc.filename} is missing); run `pack plan`"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PackError(f"{folder}: damaged plan ({exc}); run `pack plan` again") from None
    digest = plan.digest()
    if digest != doc.get("digest"):
        raise PackError(
            f"{folder}: the plan's files do not match its digest; run `pack plan` again"
        )
    return plan, digest


def _counter(counts: Mapping[str, int]) -> Counter[str]:
    return Counter({str(k): int(v) for k, v in counts.items()})
