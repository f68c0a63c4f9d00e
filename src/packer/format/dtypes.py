"""The index's arrays and their dtypes in each format version (shared by the writer, the reader
and the manifest, which records them from version 2 on). See :mod:`packer.format.index`."""

from __future__ import annotations

#: name -> (dtype in format version 1, trailing shape, extra rows beyond N)
INDEX_ARRAYS: dict[str, tuple[str, tuple[int, ...], int]] = {
    "labels": ("<i4", (), 0),
    "locations": ("<u8", (3,), 0),
    "crc32": ("<u4", (), 0),
    "extension": ("<u2", (), 0),
    "key_offsets": ("<u8", (), 1),
    "key_order": ("<u8", (), 0),
}
#: The dtypes of a format version 1 index (its manifest names none).
V1_DTYPES = {name: dtype for name, (dtype, _, _) in INDEX_ARRAYS.items()}
#: Arrays version 2 narrows to uint32 when every value fits.
NARROWABLE = ("locations", "key_offsets", "key_order")


def narrowest(largest: int) -> str:
    """The unsigned dtype an array whose values are all <= ``largest`` is written with."""
    return "<u4" if largest <= 0xFFFF_FFFF else "<u8"


def allowed_dtypes(name: str) -> tuple[str, ...]:
    """The dtypes a reader accepts for index array ``name`` (anything else: a damaged manifest)."""
    return ("<u4", "<u8") if name in NARROWABLE else (V1_DTYPES[name],)
