"""Folder tree -> ordered samples, the torchvision/HF ImageFolder convention.

Class = top-level folder, class ids = sorted folder names, and within a class the order of
``sorted(os.walk(class_dir, followlinks=True))`` then sorted file names, so a pack lists samples in
exactly the order ``torchvision.datasets.ImageFolder`` would. Only ``os.scandir`` is used: no per-file
``stat`` (directories are stat'ed once each, to break symlink loops).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from packer.errors import SourceError

#: Extensions packed by default (case-insensitive): ImageFolder's list plus GIF.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    "bmp",
    "gif",
    "jpeg",
    "jpg",
    "pgm",
    "png",
    "ppm",
    "tif",
    "tiff",
    "webp",
)

#: OS clutter that is never a sample, whatever its extension.
JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx", "$recycle.bin"})


@dataclass(frozen=True)
class Skipped:
    """A file left out of the pack, and why (reported by convert, recorded in the manifest)."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass
class Scan:
    """The samples of a tree, in pack order.

    Attributes:
        root: the scanned folder.
        classes: class names; a sample's label indexes this list.
        paths: POSIX paths relative to ``root`` (``class/.../name.ext``), in pack order.
        labels: int32 label per path.
        skipped: files that looked like samples but cannot be packed (see ``on_error``).
        ignored: count of files left out because of their extension or because they sit at the top
            level (hidden files and OS junk are not counted).
    """

    root: Path
    classes: list[str]
    paths: list[str]
    labels: np.ndarray
    skipped: list[Skipped] = field(default_factory=list)
    ignored: int = 0

    def __len__(self) -> int:
        return len(self.paths)


def split_key(relpath: str) -> tuple[str, str]:
    """``cls/a/b.JPG`` -> (``cls/a/b``, ``JPG``): the key drops the extension, whose case is kept."""
    stem, _, ext = relpath.rpartition(".")
    return stem, ext


def _is_hidden_or_junk(name: str) -> bool:
    return name.startswith(".") or name.lower() in JUNK_NAMES


def scan_tree(
    root: str | os.PathLike[str],
    *,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    on_bad_file: Callable[[Skipped], None] | None = None,
) -> Scan:
    """Scan ``root`` into a :class:`Scan`.

    Args:
        root: the class-per-folder tree.
        extensions: lower-case extensions (no dot) that count as samples.
        on_bad_file: called for each file that cannot be a sample (broken symlink, unreadable
            folder, key collision). Raise from it to stop; return to skip the file. ``None``
            raises :class:`SourceError` at the first one.
    """
    root_path = Path(root)
    if not root_path.exists():
        raise SourceError(
            f"{root_path}: no such folder; pass the folder that holds one sub-folder per class"
        )
    if not root_path.is_dir():
        raise SourceError(
            f"{root_path}: not a folder; pass the folder that holds one sub-folder per class"
        )

    def bad(skip: Skipped) -> None:
        if on_bad_file is None:
            raise SourceError(f"{root_path / skip.path}: {skip.reason}")
        on_bad_file(skip)

    wanted = frozenset(e.lower() for e in extensions)
    skipped: list[Skipped] = []

    def record(skip: Skipped) -> None:
        bad(skip)
        skipped.append(skip)

    ignored = 0
    classes: list[str] = []
    try:
        entries = sorted(os.scandir(root_path), key=lambda e: e.name)
    except OSError as exc:
        raise SourceError(
            f"{root_path}: cannot list folder ({exc.strerror}); check its permissions"
        ) from None
    for entry in entries:
        if _is_hidden_or_junk(entry.name):
            continue
        if entry.is_dir():
            classes.append(entry.name)
        else:
            ignored += 1  # top-level files belong to no class (ImageFolder ignores them too)

    paths: list[str] = []
    counts: list[int] = []
    for class_name in classes:
        before = len(paths)
        for rel_dir, files in _walk_sorted(root_path, class_name, record):
            seen_keys: dict[str, str] = {}
            for name, is_file, is_link in files:
                stem, dot, ext = name.rpartition(".")
                if not dot or ext.lower() not in wanted:
                    ignored += 1
                    continue
                if not is_file:
                    reason = "broken symbolic link" if is_link else "not a regular file"
                    record(Skipped(f"{rel_dir}/{name}", f"{reason}; remove it or fix the link"))
                    continue
                other = seen_keys.get(stem)
                if other is not None:
                    record(
                        Skipped(
                            f"{rel_dir}/{name}",
                            f"same key as {rel_dir}/{other} (keys drop the extension); rename one of them",
                        )
                    )
                    continue
                seen_keys[stem] = name
                paths.append(f"{rel_dir}/{name}")
        counts.append(len(paths) - before)

    labels = np.repeat(np.arange(len(classes), dtype=np.int32), counts)
    return Scan(root_path, classes, paths, labels, skipped, ignored)


_File = tuple[str, bool, bool]  # name, is a file (following links), is a symlink


def _walk_sorted(
    root: Path, class_name: str, record: Callable[[Skipped], None]
) -> Iterator[tuple[str, list[_File]]]:
    """Yield (relative dir, sorted files) in ``sorted(os.walk(..., followlinks=True))`` order.

    ``DirEntry`` answers is_dir/is_file from the directory listing itself; only symlinks cost a stat.

    Symlinked folders are followed (as ImageFolder does) but each real folder is visited once, so a
    symlink loop cannot hang the scan.
    """
    found: list[tuple[str, list[_File]]] = []
    visited: set[tuple[int, int]] = set()
    stack = [class_name]
    while stack:
        rel = stack.pop()
        path = root / rel
        try:
            st = path.stat()
        except OSError as exc:
            record(Skipped(rel, f"cannot read folder ({exc.strerror}); check its permissions"))
            continue
        ident = (st.st_dev, st.st_ino)
        if ident in visited:
            continue  # symlink loop or second link to the same folder
        visited.add(ident)
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError as exc:
            record(Skipped(rel, f"cannot list folder ({exc.strerror}); check its permissions"))
            continue
        files: list[_File] = []
        for entry in entries:
            if _is_hidden_or_junk(entry.name):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                stack.append(f"{rel}/{entry.name}")
            else:
                try:
                    is_file = entry.is_file()
                except OSError:
                    is_file = False
                files.append((entry.name, is_file, entry.is_symlink()))
        files.sort()
        found.append((rel, files))
    found.sort(key=lambda item: item[0])
    yield from found
