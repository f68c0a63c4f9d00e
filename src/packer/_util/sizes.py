"""Byte sizes as people write them on a command line: ``512MB``, ``1GiB``, ``4096``."""

from __future__ import annotations

import re

from packer.errors import UsageError

_UNITS = {
    "": 1,
    "B": 1,
    "K": 10**3,
    "KB": 10**3,
    "KIB": 2**10,
    "M": 10**6,
    "MB": 10**6,
    "MIB": 2**20,
    "G": 10**9,
    "GB": 10**9,
    "GIB": 2**30,
    "T": 10**12,
    "TB": 10**12,
    "TIB": 2**40,
}


def parse_bytes(text: str | int) -> int:
    """``512MB`` -> 512_000_000, ``1GiB`` -> 2**30, ``4096`` -> 4096 (always positive)."""
    if isinstance(text, int):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
        if not m or m.group(2).upper() not in _UNITS:
            raise UsageError(f"size {text!r} is not understood; write e.g. 512MB, 1GiB or 4096")
        value = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if value <= 0:
        raise UsageError(f"size {text!r} must be positive")
    return value
