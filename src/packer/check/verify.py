"""``pack verify``'s one entry point: a local folder or a URL, checked the same way."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from packer.check.local import verify_local
from packer.check.remote import verify_url
from packer.check.report import Problem, VerifyReport
from packer.errors import UsageError
from packer.progress import Progress
from packer.storage.store import is_url, local_path

__all__ = ["Problem", "VerifyReport", "verify_pack"]


def verify_pack(
    path: str | os.PathLike[str],
    *,
    deep: bool = False,
    max_pixels: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> VerifyReport:
    """Check every data and index file against the manifest's sha256, and every sample's CRC-32.

    ``deep`` also decodes every image, with the pixel limit the pack was made with (or
    ``max_pixels``); decoder warnings are collected per sample, never printed. ``workers``
    processes share the sample checks; the report is the same for any number. Damage is reported,
    not raised: the report names each bad file and sample. Only a path that is not a pack at all
    raises :class:`~packer.errors.PackError`. A URL is fetched to a temporary folder and checked
    there (see :mod:`packer.check.remote`).
    """
    if workers < 1:
        raise UsageError(f"--workers {workers} must be at least 1")
    if is_url(path):
        return verify_url(
            os.fspath(path), deep=deep, max_pixels=max_pixels, workers=workers,
            progress=progress, storage_options=storage_options,
        )  # fmt: skip
    return verify_local(
        local_path(path), deep=deep, max_pixels=max_pixels, workers=workers, progress=progress
    )
