"""``pack inspect``: what is in a pack, read from its manifest alone (no data file is opened)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypedDict

from packer._util.files import STATE_DIR, tree_bytes
from packer.format.manifest import Manifest
from packer.storage.store import Store, fetch_manifest, is_url, local_path


def _remote(url: str) -> tuple[str, Manifest, int]:
    """The manifest of the pack at ``url`` and its size (one listing, the update state left out)."""
    store = Store(url)
    _, manifest = fetch_manifest(store)
    size = sum(n for name, n in store.listing().items() if not name.startswith(f"{STATE_DIR}/"))
    return url.rstrip("/"), manifest, size


class ClassCount(TypedDict):
    name: str
    label: int
    count: int


class InspectDoc(TypedDict):
    """``pack inspect --json``: a pack described from its manifest."""

    path: str
    format_version: int
    backend: str
    options: dict[str, Any]
    num_samples: int
    num_classes: int
    classes: list[ClassCount]
    payload_bytes: int
    pack_bytes: int
    source_bytes: int
    size_vs_source: float | None
    data_files: list[dict[str, Any]]
    extensions: list[str]
    created_by: dict[str, Any]
    skipped: list[dict[str, str]]
    ignored_files: int
    ignored_by_reason: dict[str, int]
    warnings: list[dict[str, str]]
    transform: dict[str, Any] | None
    sample_shape: list[int] | None


def inspect_pack(path: str | os.PathLike[str]) -> InspectDoc:
    """What is in a pack, from its manifest (no data file is read). The ``pack inspect --json`` doc."""
    root: Path | str
    if is_url(path):
        root, m, pack_bytes = _remote(str(path))
    else:
        root = local_path(path)
        m = Manifest.read(root)
        pack_bytes = tree_bytes(root)
    source_bytes = int(m.source.get("bytes", 0) or 0)
    return {
        "path": str(root),
        "format_version": m.format_version,
        "backend": m.backend_name,
        "options": m.options,
        "num_samples": m.num_samples,
        "num_classes": len(m.classes),
        "classes": [
            {"name": c, "label": i, "count": n}
            for i, (c, n) in enumerate(zip(m.classes, m.class_counts, strict=True))
        ],
        "payload_bytes": m.payload_bytes,
        "pack_bytes": pack_bytes,
        "source_bytes": source_bytes,
        "size_vs_source": round(pack_bytes / source_bytes, 4) if source_bytes else None,
        "data_files": [d.to_dict() for d in m.data_files],
        "extensions": m.extensions,
        "created_by": m.created_by,
        "skipped": m.skipped,
        "ignored_files": _count(m.source.get("ignored_files")),
        "ignored_by_reason": {
            str(k): _count(v) for k, v in _mapping(m.source.get("ignored_by_reason")).items()
        },
        "warnings": m.warnings,
        "transform": m.transform,
        "sample_shape": m.sample_shape,
    }


def _count(value: Any) -> int:
    """A count from a manifest field that may be missing or hand-edited."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
