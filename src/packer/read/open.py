"""Opening a pack, local or remote: the one place that knows both readers.

:func:`open_pack` sits above :class:`~packer.read.pack.Pack` and
:class:`~packer.read.remote.RemotePack`, so neither reader imports the other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from packer.errors import PackError
from packer.read.pack import Pack
from packer.read.remote import RemotePack
from packer.storage.store import is_url, local_path


def open_pack(
    path: str | os.PathLike[str],
    *,
    in_memory: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    retries: int | None = None,
) -> Pack:
    """Open the pack at ``path`` (cheap: the index is memory-mapped, data files open on first read).

    ``in_memory=True`` reads every data file once into the (shared) page cache on first access.
    A URL (``s3://bucket/train.pack``, any fsspec URL) opens a :class:`packer.read.remote.RemotePack`:
    ``storage_options`` go to fsspec, the index is cached under ``cache_dir``, transient errors
    are retried ``retries`` times (default ``$PACKER_RETRIES``, else 3).
    """
    if is_url(path):
        if in_memory:
            raise PackError(f"{path}: in_memory is for local packs; `pack stage` it first")
        return RemotePack(
            os.fspath(path), storage_options=storage_options, cache_dir=cache_dir, retries=retries
        )
    return Pack(local_path(path), in_memory=in_memory)
