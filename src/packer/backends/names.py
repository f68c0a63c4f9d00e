"""Member names for archive formats: a sample key as WebDataset groups it, and as Arrow may store it."""

from __future__ import annotations


def member_stem(key: str) -> str:
    """The archive member name of a key, without extension, safe for WebDataset-style grouping.

    WebDataset splits a member name at the first dot of its base name, so dots there would split one
    sample into several; undecodable bytes (kept by ``surrogateescape``) cannot be stored as UTF-8.
    Both, and ``%`` itself, are percent-encoded, so the mapping is reversible and collision-free:
    ``cat/img.001`` -> ``cat/img%2E001``. Keys in the pack index are always the original ones.
    """
    head, slash, base = key.rpartition("/")
    if "%" not in key and "." not in base and key.isascii():
        return key  # the common case, no copy
    return _escape(head, dots=False) + slash + _escape(base, dots=True)


def _escape(text: str, *, dots: bool) -> str:
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch == "%" or (dots and ch == "."):
            out.append(f"%{code:02X}")
        elif 0xDC80 <= code <= 0xDCFF:  # a raw byte smuggled in by surrogateescape
            out.append(f"%{code - 0xDC00:02X}")
        else:
            out.append(ch)
    return "".join(out)


def display_key(key: str) -> str:
    """Arrow strings must be valid UTF-8: undecodable bytes show as U+FFFD (the pack index keeps them)."""
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
