"""Indexes that other loaders read beside a tar pack's shards, so they open it without scanning.

- ``wids.json``: the ``wids`` shard index (``wids-shard-index-v1``): each shard's URL relative to
  the JSON's folder, sample count and size. No ``md5sum`` (wids would then read every shard on
  open; the pack's manifest holds each shard's sha256). Not written when a member name is longer
  than 100 bytes: wids 0.1.11 reads the 100-byte ustar name field and ignores the pax header that
  holds a longer name, then fails on the sample.
- ``dali/shard-NNNNN.idx``: NVIDIA DALI's webdataset index (the ``wds2idx`` format) per shard: a
  ``v1.2 <samples>`` line, then a line per sample of ``<ext> <payload offset> <size> <member name>``
  per member. DALI splits lines on whitespace, so a shard with a space in a member name gets a
  ``v1.1`` index (no names), which DALI reads too. DALI takes the extension after the first dot
  of a member's base name; member names escape dots in keys (see ``member_stem``), so it agrees.

Everything comes from the pack index (payload offsets and sizes are exact; a ``.cls`` member's
offset follows from its header, built by the same function that wrote it): no shard is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from packer.backends.names import member_stem

if TYPE_CHECKING:
    from packer.format.index import Index
    from packer.format.manifest import Manifest

WIDS_FILE = "wids.json"
DALI_DIR = "dali"
_BLOCK = 512


USTAR_NAME_BYTES = 100


def loader_files(
    manifest: Manifest, index: Index, *, cls_members: bool, header: Callable[[str, int], bytes]
) -> dict[str, bytes]:
    """``wids.json`` (when wids can read every member name) and one DALI index per shard;
    ``header(name, size)`` is the tar header the writer used."""
    dali, longest = dali_indexes(manifest, index, cls_members=cls_members, header=header)
    files = dict(dali)
    if longest <= USTAR_NAME_BYTES:
        files[WIDS_FILE] = wids_index(manifest)
    return files


def wids_index(manifest: Manifest) -> bytes:
    shards = [
        {"url": d.name, "nsamples": d.num_samples, "filesize": d.bytes} for d in manifest.data_files
    ]
    doc = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "shardlist": shards}
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def dali_indexes(
    manifest: Manifest, index: Index, *, cls_members: bool, header: Callable[[str, int], bytes]
) -> tuple[dict[str, bytes], int]:
    """One DALI index per shard, and the longest member name in bytes; ``header(name, size)`` is
    the tar header the writer used. No index when an extension is empty or holds a space (DALI
    could not parse the record)."""
    out: dict[str, bytes] = {}
    longest = 0
    extensions = manifest.extensions
    skip = any(not e or _has_space(e) for e in extensions)
    start = 0
    for data_file in manifest.data_files:
        stop = start + data_file.num_samples
        rows = index.locations[start:stop]
        offsets, sizes = rows[:, 1].tolist(), rows[:, 2].tolist()
        exts = [extensions[e] for e in index.extension[start:stop].tolist()]
        stems = [member_stem(key) for key in index.key_list(start, stop)]
        names = [f"{stem}.{ext}" for stem, ext in zip(stems, exts, strict=True)]
        members = [(exts, offsets, sizes, names)]
        if cls_members:
            cls_names = [f"{stem}.cls" for stem in stems]
            digits = [len(str(label)) for label in index.labels[start:stop].tolist()]
            cls_offsets = [
                offset + size + (-size % _BLOCK) + _header_size(name, n, header)
                for offset, size, name, n in zip(offsets, sizes, cls_names, digits, strict=True)
            ]
            members.append((["cls"] * len(stems), cls_offsets, digits, cls_names))
        longest = max(longest, *(_longest(m[3]) for m in members))
        if not skip:
            named = not _has_space("/".join(names))  # a .cls name holds its sample's stem
            columns = [
                [
                    f"{e} {o} {n} {name}" if named else f"{e} {o} {n}"
                    for e, o, n, name in zip(*m, strict=True)
                ]
                for m in members
            ]
            lines = list(map(" ".join, zip(*columns, strict=True)))
            text = f"{'v1.2' if named else 'v1.1'} {stop - start}\n" + "\n".join(lines) + "\n"
            name = data_file.name.rsplit(".", 1)[0] + ".idx"
            out[f"{DALI_DIR}/{name}"] = text.encode("utf-8", "surrogateescape")
        start = stop
    return out, longest


def _longest(names: list[str]) -> int:
    """The longest name in bytes (UTF-8, as the tar header stores it)."""
    if not names:
        return 0
    if "".join(names).isascii():
        return max(map(len, names))
    return max(len(n.encode("utf-8", "surrogateescape")) for n in names)


def _header_size(name: str, size: int, header: Callable[[str, int], bytes]) -> int:
    """One 512-byte ustar block for a short ASCII name; otherwise what the writer produced."""
    if name.isascii() and len(name) <= USTAR_NAME_BYTES:
        return _BLOCK
    return len(header(name, size))


_SPACE = re.compile(r"\s")


def _has_space(text: str) -> bool:
    """Whitespace as C++ ``operator>>`` would split on (and Python's ``str.split``)."""
    return _SPACE.search(text) is not None
