"""``pack extract``: write a byte-passthrough pack back out as the original tree.

Each sample becomes ``OUT/<key>.<ext>`` (or ``OUT/<key>`` when the key keeps its extension, see
:func:`packer.source.scanner.file_name`) with its stored bytes, checked against its CRC-32 before it
is written; every class folder is created (empty ones too), so ``convert`` then ``extract`` gives
back a tree that ``diff -r`` finds identical (hidden files, OS junk and non-images are never packed).
Keys come from a file that could have been edited: any key that is absolute, has an empty, ``.`` or
``..`` part, or would leave OUT through a symlink is refused before anything is written.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from packer.errors import OutputError, PackError, UsageError
from packer.format.keys import file_name, safe_relative
from packer.progress import NoProgress, Progress
from packer.read.open import open_pack
from packer.read.pack import Pack


@dataclass
class ExtractReport:
    path: Path
    out: Path
    files: int
    bytes: int
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "out": str(self.out),
            "files": self.files,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
        }


def select(pack: Pack, classes: Iterable[str] | None, keys: Iterable[str] | None) -> np.ndarray:
    """Sample positions (sorted) of ``classes`` and/or ``keys``; all samples if neither."""
    mask = np.ones(len(pack), dtype=bool)
    if classes is not None:
        mask &= np.isin(pack.labels, _class_ids(pack, classes))
    if keys is not None:
        wanted = np.zeros(len(pack), dtype=bool)
        for key in keys:
            try:
                wanted[pack.index_of(key)] = True
            except KeyError:
                raise UsageError(
                    f"{pack.path}: no sample has the key {key!r}; keys look like "
                    f"{pack.key(0)!r} (see `pack inspect`)"
                ) from None
        mask &= wanted
    return np.flatnonzero(mask)


def _class_ids(pack: Pack, classes: Iterable[str]) -> list[int]:
    lookup = {name: i for i, name in enumerate(pack.classes)}
    ids = []
    for name in classes:
        if name not in lookup:
            shown = ", ".join(pack.classes[:20]) + (", ..." if len(pack.classes) > 20 else "")
            raise UsageError(f"{pack.path}: no class {name!r}; the classes are: {shown}")
        ids.append(lookup[name])
    return ids


def read_key_list(path: str | os.PathLike[str]) -> list[str]:
    """``--keys-from FILE``: one key per line (``-`` for stdin); blank lines are skipped."""
    import sys

    try:
        text = sys.stdin.read() if str(path) == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the key list ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the key list is not UTF-8 text") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _inside(root: Path, target: Path) -> bool:
    """True if the deepest existing folder on the way to ``target``, with symlinks resolved, lies
    inside ``root`` (checked before creating any folder, so none is ever made outside it)."""
    real_root = os.path.realpath(root)
    folder = target.parent
    while not folder.exists() and folder != root:
        folder = folder.parent
    real = os.path.realpath(folder)
    return real == real_root or real.startswith(real_root + os.sep)


def extract(
    pack_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    force: bool = False,
    classes: Iterable[str] | None = None,
    keys: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> ExtractReport:
    """Write the samples of a byte-passthrough pack to ``out/<key>.<ext>``: all of them, or those
    of ``classes`` and/or with ``keys`` (both given: samples that match both), in pack order.

    Args:
        pack_path: the pack.
        out: the folder to write into (created if missing).
        force: overwrite files that already exist there (otherwise nothing is written).
        classes: class names to extract; an unknown name is an error naming the classes.
        keys: sample keys to extract; an unknown key is an error naming it.
        progress: receives progress events.
    """
    started = time.perf_counter()
    progress = progress or NoProgress()
    out_path = Path(out)
    classes = None if classes is None else list(classes)
    with open_pack(pack_path) as pack:
        if pack.shape is not None:
            raise PackError(
                f"{pack.path}: stores decoded pixels (converted with --size), not the original files; "
                "read them with pack.array(i)"
            )
        chosen = select(pack, classes, keys)
        names: list[str] = []
        for i in chosen.tolist():
            ext = pack.manifest.extensions[int(pack.index.extension[i])]
            if "/" in ext or ext in (".", ".."):
                raise PackError(f"{pack.path}: sample {i} has the extension {ext!r}, refused")
            names.append(safe_relative(file_name(pack.key(i), ext)))
        wanted_classes = (
            pack.classes
            if classes is None
            else [pack.classes[c] for c in _class_ids(pack, classes)]
        )
        for cls in wanted_classes:
            safe_relative(cls)
        out_path.mkdir(parents=True, exist_ok=True)
        if not force:
            clash = next((n for n in names if os.path.lexists(out_path / n)), None)
            if clash is not None:
                raise OutputError(
                    f"{out_path / clash}: already exists; pass --force to overwrite, or extract elsewhere"
                )
        for cls in wanted_classes:
            if not _inside(out_path, out_path / cls / "x"):
                raise OutputError(
                    f"refusing {out_path / cls}: a symlink in the output folder leads outside it; "
                    "remove the link or extract elsewhere"
                )
            (out_path / cls).mkdir(exist_ok=True)
        progress.start(len(names), f"extract {pack.path.name}")
        crcs = pack.index.crc32
        total = done = pending = 0
        for i, name in zip(chosen.tolist(), names, strict=True):
            data = pack.read(i)
            if zlib.crc32(data) != int(crcs[i]):
                raise PackError(
                    f"{pack.path}: sample {i} ({name}) is damaged (CRC-32 mismatch); run `pack verify`"
                )
            target = out_path / name
            if not _inside(out_path, target):
                raise OutputError(
                    f"refusing {target}: a symlink in the output folder leads outside it; remove "
                    "the link or extract elsewhere"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = (
                target.parent / f".packer-extract-{os.getpid()}-{i}"
            )  # short: names may be 255 bytes
            with open(partial, "wb") as f:
                f.write(data)
            partial.replace(target)
            total += len(data)
            done += 1
            pending += len(data)
            if done % 256 == 0:
                progress.advance(256, pending)
                pending = 0
        progress.advance(done % 256, pending)
        progress.finish()
        return ExtractReport(pack.path, out_path, len(names), total, time.perf_counter() - started)
