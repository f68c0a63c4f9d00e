"""Sample keys: the path in SRC without its extension, unique and reversible.

The rule (docs/format.md): a key is the relative path without the extension; where that would not
be unique in its folder or could not be turned back into the file name, the key is the whole
relative path. :func:`file_name` inverts :func:`sample_key`, which is what ``pack extract`` relies on.
"""

from __future__ import annotations

from collections import Counter

from packer.errors import PackError


def split_name(relpath: str) -> tuple[str, str]:
    """``cls/a/b.JPG`` -> (``cls/a/b``, ``JPG``); ``cls/README`` -> (``cls/README``, ``""``).

    Only the base name is split (a dot in a folder name is not an extension); the case is kept.
    """
    slash = relpath.rfind("/")
    dot = relpath.rfind(".")
    if dot <= slash + 1:  # no dot in the base name, or only a leading one
        return relpath, ""
    return relpath[:dot], relpath[dot + 1 :]


def sample_key(relpath: str, full: bool) -> tuple[str, str]:
    """The key and extension of a sample file: the key is the path without its extension, or the
    whole path when ``full`` (files whose names differ only by extension, see :func:`_full_names`)."""
    stem, ext = split_name(relpath)
    return (relpath if full else stem), ext


def file_name(key: str, ext: str) -> str:
    """The inverse of :func:`sample_key`: the relative file name a key and extension came from."""
    if not ext or key.endswith("." + ext):
        return key
    return f"{key}.{ext}"


def full_names(names: list[str]) -> list[str]:
    """Names in one folder whose key must keep the extension, so that every key is unique and
    ``file_name(key, ext)`` gives the name back: names sharing a stem (``star.png``, ``star.jpg``),
    names whose stem already ends in their extension (``a.png.png``), and, until none is left, a
    stem equal to another file's full name (``star.png.jpg`` beside a full ``star.png``)."""
    # Fast path (almost every folder): distinct stems and no name with two dots.
    stems = [n.rpartition(".")[0] or n for n in names]
    if len(set(stems)) == len(names) and not any(n.count(".") > 1 for n in names):
        return []
    counts = Counter(stems)
    full = set()
    for n, stem in zip(names, stems, strict=True):
        ext = split_name(n)[1]
        if ext and (counts[stem] > 1 or stem.endswith("." + ext)):
            full.add(n)
    changed = bool(full)
    while changed:
        changed = False
        for n in names:
            if n not in full and split_name(n)[1] and split_name(n)[0] in full:
                full.add(n)
                changed = True
    return sorted(full)


def safe_relative(name: str) -> str:
    """``name`` if it is a plain relative POSIX path that stays inside its root, else PackError."""
    parts = name.split("/")
    if name.startswith("/") or "\x00" in name or any(p in ("", ".", "..") for p in parts):
        raise PackError(f"refusing path {name!r} from the pack: it would escape the output folder")
    return name
