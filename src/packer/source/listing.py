"""``pack convert --from-list LIST SRC_ROOT DST``: samples from a CSV/TSV of ``path,label`` rows.

The layout many datasets ship with (ImageNet's validation labels, Kaggle sets): files anywhere
under SRC_ROOT, labels in a table. Rules (docs/commands.md):

- one row per sample, ``path`` relative to SRC_ROOT (POSIX separators), then ``label``; a first
  row ``path,label`` (any case) is a header; blank lines are skipped; tab-separated when the file
  ends in ``.tsv`` or its first line holds a tab.
- labels are class names, or integers. Classes: the ``classes`` file (one name per line, line i is
  label i) when given; else the sorted distinct names (ImageFolder's rule); else, for integers,
  ``"0"``..``"max"``.
- order = row order. Keys follow the folder rule (path without extension; both kept for names
  that differ only by extension).
- a row that cannot be used (missing field, empty, absolute or ``..`` path, unknown class, label
  out of range, a path listed twice) is an error naming the list, the line and the fix; nothing is
  written.

The result is a :class:`~packer.source.scanner.Scan`, so planning, workers, parts and resume work as for
a folder tree.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from packer._util.pathtable import PathTable
from packer.errors import SourceError, UsageError
from packer.format.keys import full_names
from packer.source.scanner import Scan


def read_list(
    list_path: str | os.PathLike[str],
    root: str | os.PathLike[str],
    *,
    classes_file: str | os.PathLike[str] | None = None,
) -> Scan:
    """The samples the list names, as a :class:`Scan` rooted at ``root``."""
    listing, root_path = Path(list_path), Path(root)
    if not root_path.is_dir():
        raise SourceError(f"{root_path}: no such folder; pass the folder the list's paths are in")
    rows = _rows(listing)
    given = _read_classes(Path(classes_file)) if classes_file is not None else None
    paths = [p for _, p, _ in rows]
    labels = np.empty(len(rows), dtype=np.int32)
    if all(label.lstrip("-").isdigit() for _, _, label in rows) and (
        given is None or not any(label in given for _, _, label in rows)
    ):
        numbers = [int(label) for _, _, label in rows]
        classes = given if given is not None else [str(i) for i in range(max(numbers) + 1)]
        for i, ((line, _, label), number) in enumerate(zip(rows, numbers, strict=True)):
            if not 0 <= number < len(classes):
                raise SourceError(
                    f"{listing}:{line}: label {label} is out of range (0..{len(classes) - 1}); "
                    "fix the row or the classes file"
                )
            labels[i] = number
    else:
        classes = given if given is not None else sorted({label for _, _, label in rows})
        lookup = {name: i for i, name in enumerate(classes)}
        for i, (line, _, label) in enumerate(rows):
            if label not in lookup:
                raise SourceError(
                    f"{listing}:{line}: class {label!r} is not in the classes file; add it there "
                    "or fix the row"
                )
            labels[i] = lookup[label]
    by_folder: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        folder, _, name = path.rpartition("/")
        by_folder[folder].append(name)
    full_keys = frozenset(
        f"{folder}/{name}" if folder else name
        for folder, names in by_folder.items()
        for name in full_names(names)
    )
    return Scan(root_path, classes, PathTable.from_strings(paths), labels, full_keys)


def _rows(listing: Path) -> list[tuple[int, str, str]]:
    """(line number, path, label) of every data row, each path checked."""
    try:
        text = listing.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise UsageError(f"{listing}: cannot read the list ({exc.strerror})") from None
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    delimiter = "\t" if listing.suffix.lower() == ".tsv" or "\t" in first else ","
    rows: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    for line, fields in enumerate(csv.reader(lines, delimiter=delimiter), start=1):
        if not fields or not "".join(fields).strip():
            continue
        if not rows and not seen and [f.strip().lower() for f in fields] == ["path", "label"]:
            continue  # the header
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise SourceError(
                f"{listing}:{line}: expected 'path{delimiter}label', got {delimiter.join(fields)!r}"
            )
        path, label = fields[0].strip().replace(os.sep, "/"), fields[1].strip()
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise SourceError(
                f"{listing}:{line}: path {path!r} must be relative to SRC_ROOT and stay inside it"
            )
        if path in seen:
            raise SourceError(
                f"{listing}:{line}: {path} is listed twice (first on line {seen[path]}); "
                "remove one row"
            )
        seen[path] = line
        rows.append((line, path, label))
    if not rows:
        raise SourceError(f"{listing}: no rows; expected lines of 'path{delimiter}label'")
    return rows


def _read_classes(path: Path) -> list[str]:
    try:
        names = [n.strip() for n in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the classes file ({exc.strerror})") from None
    names = [n for n in names if n]
    if len(set(names)) != len(names):
        raise UsageError(f"{path}: a class name appears twice; one name per line, each once")
    if not names:
        raise UsageError(f"{path}: no class names; one name per line")
    return names
