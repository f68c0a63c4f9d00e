"""``pack extract``: write a byte-passthrough pack back out as the original tree.

Each sample becomes ``OUT/<key>.<ext>`` (or ``OUT/<key>`` when the key keeps its extension, see
:func:`packer.scanner.file_name`) with its stored bytes, checked against its CRC-32 before it
is written; every class folder is created (empty ones too), so ``convert`` then ``extract`` gives
back a tree that ``diff -r`` finds identical (hidden files, OS junk and non-images are never packed).
Keys come from a file that could have been edited: any key that is absolute, has an empty, ``.`` or
``..`` part, or would leave OUT through a symlink is refused before anything is written.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packer.errors import OutputError, PackError
from packer.keys import file_name
from packer.pack import open_pack
from packer.progress import NoProgress, Progress


@dataclass
class ExtractReport:
    path: Path
    out: Path
    files: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "out": str(self.out),
            "files": self.files,
            "bytes": self.bytes,
        }


def safe_relative(name: str) -> str:
    """``name`` if it is a plain relative POSIX path that stays inside its root, else PackError."""
    parts = name.split("/")
    if name.startswith("/") or "\x00" in name or any(p in ("", ".", "..") for p in parts):
        raise PackError(f"refusing path {name!r} from the pack: it would escape the output folder")
    return name


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
    progress: Progress | None = None,
) -> ExtractReport:
    """Write every sample of a byte-passthrough pack to ``out/<key>.<ext>``.

    Args:
        pack_path: the pack.
        out: the folder to write into (created if missing).
        force: overwrite files that already exist there (otherwise nothing is written).
        progress: receives progress events.
    """
    progress = progress or NoProgress()
    out_path = Path(out)
    with open_pack(pack_path) as pack:
        if pack.shape is not None:
            raise PackError(
                f"{pack.path}: stores decoded pixels (converted with --size), not the original files; "
                "read them with pack.array(i)"
            )
        names: list[str] = []
        for i, key in enumerate(pack.keys()):
            ext = pack.manifest.extensions[int(pack.index.extension[i])]
            if "/" in ext or ext in (".", ".."):
                raise PackError(f"{pack.path}: sample {i} has the extension {ext!r}, refused")
            names.append(safe_relative(file_name(key, ext)))
        for cls in pack.classes:
            safe_relative(cls)
        out_path.mkdir(parents=True, exist_ok=True)
        if not force:
            clash = next((n for n in names if os.path.lexists(out_path / n)), None)
            if clash is not None:
                raise OutputError(
                    f"{out_path / clash}: already exists; pass --force to overwrite, or extract elsewhere"
                )
        for cls in pack.classes:
            if not _inside(out_path, out_path / cls / "x"):
                raise PackError(
                    f"refusing {out_path / cls}: a symlink in the output folder leads outside it"
                )
            (out_path / cls).mkdir(exist_ok=True)
        progress.start(len(pack), f"extract {pack.path.name}")
        crcs = pack.index.crc32
        total = 0
        for i, name in enumerate(names):
            data = pack.read(i)
            if zlib.crc32(data) != int(crcs[i]):
                raise PackError(
                    f"{pack.path}: sample {i} ({name}) is damaged (CRC-32 mismatch); run `pack verify`"
                )
            target = out_path / name
            if not _inside(out_path, target):
                raise PackError(
                    f"refusing {target}: a symlink in the output folder leads outside it"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = (
                target.parent / f".packer-extract-{os.getpid()}-{i}"
            )  # short: names may be 255 bytes
            with open(partial, "wb") as f:
                f.write(data)
            partial.replace(target)
            total += len(data)
            if i % 256 == 255:
                progress.advance(256, 0)
        progress.finish()
        return ExtractReport(pack.path, out_path, len(names), total)
