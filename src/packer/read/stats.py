"""``pack inspect --stats``: what the images in a pack are, from their headers (nothing decoded).

Formats, Pillow modes, width/height distributions (min/median/max and a histogram) and bytes per
sample, overall and per class. JPEG and PNG headers are parsed here (the common case, a few
microseconds each); other formats ask Pillow's ``Image.open``, which reads the header only. Pixel
packs are described from their fixed shape without reading a sample.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import TypedDict

import numpy as np

from packer.images.headers import fast_header
from packer.images.opening import open_unchecked
from packer.read.open import open_pack
from packer.read.pack import Pack

#: histogram bin edges for widths and heights, in pixels (the last bin is open-ended)
SIZE_EDGES = (0, 32, 64, 128, 256, 512, 1024, 2048, 4096)
NOT_AN_IMAGE = "not an image"
_SHAPE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


class Distribution(TypedDict, total=False):
    """min/median/max/mean (None with no samples); ``histogram``: counts per SIZE_EDGES bin."""

    min: int | None
    median: float | None
    max: int | None
    mean: float | None
    histogram: list[int]


class GroupStats(TypedDict):
    samples: int
    formats: dict[str, int]
    modes: dict[str, int]
    width: Distribution
    height: Distribution
    bytes: Distribution


class ClassStats(GroupStats):
    label: int
    name: str


class PackStats(TypedDict):
    """``pack inspect --stats --json``."""

    path: str
    size_bins: list[int]
    overall: GroupStats
    classes: list[ClassStats]


def sample_header(data: bytes) -> tuple[str, str, int, int]:
    """(format, mode, width, height) of an encoded image; format ``not an image`` (mode ``-``,
    size 0 x 0) for bytes no reader recognises."""
    fast = fast_header(data)
    if fast is not None:
        return fast
    from PIL import UnidentifiedImageError

    try:  # header only, so a huge image is described, not refused: no pixel limit applies
        with open_unchecked(data) as im:
            return str(im.format), im.mode, im.width, im.height
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return NOT_AN_IMAGE, "-", 0, 0


def pack_stats(path: str | os.PathLike[str]) -> PackStats:
    """The ``--stats`` document: ``overall`` and one entry per class (same fields)."""
    with open_pack(path) as pack:
        n = len(pack)
        labels = np.asarray(pack.labels, dtype=np.int64)
        if pack.shape is not None:
            h, w, c = pack.shape
            nbytes = np.full(n, h * w * c, dtype=np.int64)
            fmt = np.zeros(n, dtype=np.int32)
            mode = np.zeros(n, dtype=np.int32)
            width, height = np.full(n, w, dtype=np.int64), np.full(n, h, dtype=np.int64)
            formats, modes = ["pixels"], [_SHAPE_MODES.get(c, f"{c} channels")]
        else:
            fmt, mode, width, height, nbytes, formats, modes = _read_headers(pack)
        columns = (fmt, mode, width, height, nbytes)
        order = np.argsort(labels, kind="stable")  # one sort, then each class is a slice
        ends = np.searchsorted(labels[order], np.arange(len(pack.classes) + 1))
        classes: list[ClassStats] = []
        for i, name in enumerate(pack.classes):
            rows = order[ends[i] : ends[i + 1]]
            group = tuple(column[rows] for column in columns)
            classes.append({"label": i, "name": name, **_summary(group, formats, modes)})
        overall = _summary(columns, formats, modes)
        return {
            "path": str(pack.path),
            "size_bins": list(SIZE_EDGES),
            "overall": overall,
            "classes": classes,
        }


def _read_headers(
    pack: Pack,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """Per sample: format id, mode id, width, height, bytes (ids index the name lists)."""
    n = len(pack)
    fmt, mode = np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32)
    width, height = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    nbytes = np.empty(n, dtype=np.int64)
    format_ids: dict[str, int] = {}
    mode_ids: dict[str, int] = {}
    for i, (data, _) in enumerate(pack.iter_raw()):
        f, m, w, h = sample_header(data)
        fmt[i] = format_ids.setdefault(f, len(format_ids))
        mode[i] = mode_ids.setdefault(m, len(mode_ids))
        width[i], height[i], nbytes[i] = w, h, len(data)
    return fmt, mode, width, height, nbytes, list(format_ids), list(mode_ids)


def _summary(columns: tuple[np.ndarray, ...], formats: list[str], modes: list[str]) -> GroupStats:
    """The figures of one group of samples (sizes only over the images among them) from its
    format ids, mode ids, widths, heights and byte counts."""
    fmt, mode, width, height, nbytes = columns
    images = fmt != formats.index(NOT_AN_IMAGE) if NOT_AN_IMAGE in formats else slice(None)
    return {
        "samples": len(fmt),
        "formats": _counts(fmt, formats),
        "modes": _counts(mode, modes),
        "width": _distribution(width[images]),
        "height": _distribution(height[images]),
        "bytes": _distribution(nbytes, histogram=False),
    }


def _counts(ids: np.ndarray, names: list[str]) -> dict[str, int]:
    counts = Counter(dict(zip(names, np.bincount(ids, minlength=len(names)).tolist(), strict=True)))
    return {name: count for name, count in counts.most_common() if count}


def _distribution(values: np.ndarray, *, histogram: bool = True) -> Distribution:
    """min/median/max/mean, and counts per :data:`SIZE_EDGES` bin for pixel sizes."""
    doc: Distribution = {"min": None, "median": None, "max": None, "mean": None}
    if len(values):
        doc = {
            "min": int(values.min()),
            "median": float(np.median(values)),
            "max": int(values.max()),
            "mean": round(float(values.mean()), 1),
        }
    if histogram:
        edges = np.array([*SIZE_EDGES, np.iinfo(np.int64).max])
        doc["histogram"] = np.histogram(values, bins=edges)[0].tolist()
    return doc
