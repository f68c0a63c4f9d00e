"""Format version 2 narrows the index where values fit; packs of version 1 stay readable.

tests/data/v1 holds packs written by packer 0.1.0, the last version-1 writer (see its README).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from packer._util.columns import read_npy_header
from packer.api import convert, extract, open_pack, verify_pack
from packer.cli.main import app
from packer.format.dtypes import V1_DTYPES, narrowest
from packer.format.index import INDEX_DIR, IndexWriter
from packer.testing import tree_digest

V1 = Path(__file__).parent / "data" / "v1"
EXPECTED: list[dict[str, Any]] = json.loads((V1 / "expected.json").read_text())


def _npy_dtype(path: Path) -> str:
    with open(path, "rb") as f:
        return str(read_npy_header(f)[2].str)


@pytest.fixture(params=["tar", "zip"])
def v1_pack(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    pack = tmp_path / f"{request.param}.pack"
    shutil.copytree(V1 / f"{request.param}.pack", pack)
    return pack


def _samples(path: Path) -> list[dict[str, Any]]:
    with open_pack(path) as p:
        return [
            {
                "key": s.key.encode("utf-8", "surrogateescape").hex(),
                "label": s.label,
                "ext": s.ext,
                "sha256": hashlib.sha256(s.data).hexdigest(),
            }
            for s in p
        ]


def test_a_version_1_pack_reads_as_it_was_written(v1_pack: Path) -> None:
    assert json.loads((v1_pack / "manifest.json").read_text())["format_version"] == 1
    for name, dtype in V1_DTYPES.items():
        assert _npy_dtype(v1_pack / INDEX_DIR / f"{name}.npy") == dtype
    assert _samples(v1_pack) == EXPECTED
    with open_pack(v1_pack) as p:
        assert p.manifest.index_dtypes == V1_DTYPES
        assert p.labels.tolist() == [s["label"] for s in EXPECTED]
        for i, sample in enumerate(EXPECTED):
            key = bytes.fromhex(sample["key"]).decode("utf-8", "surrogateescape")
            assert p.index.find(key) == i
        assert p.index.find("cat/nonesuch") is None


def test_a_version_1_pack_verifies_deep_and_extracts(v1_pack: Path, tmp_path: Path) -> None:
    report = verify_pack(v1_pack, deep=True)
    assert report.ok, report.problems
    extract(v1_pack, tmp_path / "out")
    for sample in EXPECTED:
        name = os.fsdecode(bytes.fromhex(sample["key"])) + "." + sample["ext"]
        data = (tmp_path / "out" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sample["sha256"]


def test_inspect_names_the_version(v1_pack: Path) -> None:
    done = CliRunner().invoke(app, ["inspect", str(v1_pack), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["format_version"] == 1


def test_a_version_1_pack_repacks_into_version_2_with_the_same_samples(
    v1_pack: Path, tmp_path: Path
) -> None:
    """Extracted and converted again (as `--update` over it does too: it has no update state),
    the samples are the same; the new index is version 2, narrowed, and a fresh convert's bytes."""
    extract(v1_pack, tmp_path / "tree")
    fmt = v1_pack.stem
    convert(tmp_path / "tree", v1_pack, fmt, update=True)
    fresh = convert(tmp_path / "tree", tmp_path / "fresh.pack", fmt).path
    assert tree_digest(v1_pack) == tree_digest(fresh)
    manifest = json.loads((v1_pack / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    assert manifest["index"]["dtypes"] == {
        **V1_DTYPES,
        "locations": "<u4",
        "key_offsets": "<u4",
        "key_order": "<u4",
    }
    for name, dtype in manifest["index"]["dtypes"].items():
        assert _npy_dtype(v1_pack / INDEX_DIR / f"{name}.npy") == dtype
    assert _samples(v1_pack) == EXPECTED


def _write_index(root: Path, rows: np.ndarray, keys: list[bytes]) -> dict[str, str]:
    writer = IndexWriter(root)
    n = len(rows)
    writer.append(
        np.zeros(n, "<i4"),
        rows,
        np.zeros(n, "<u4"),
        np.zeros(n, "<u2"),
        b"".join(keys),
        np.array([len(k) for k in keys], "<u4"),
    )
    writer.finish(unique_keys=True)
    return writer.dtypes


@pytest.mark.parametrize(
    ("offset", "length", "dtype"),
    [
        (2**32 - 11, 10, "<u4"),  # the last sample ends at 2**32 - 1: every value fits
        (2**32 - 11, 11, "<u8"),  # ... at 2**32: offset + length would overflow uint32
        (2**32, 5, "<u8"),  # a data file past 4 GiB
        (0, 2**32, "<u8"),  # one sample of 4 GiB
    ],
)
def test_locations_narrow_only_when_offset_plus_length_fits(
    tmp_path: Path, offset: int, length: int, dtype: str
) -> None:
    rows = np.array([[0, 0, 7], [3, offset, length]], dtype="<u8")
    dtypes = _write_index(tmp_path, rows, [b"b", b"a"])
    assert dtypes["locations"] == dtype
    stored = np.load(tmp_path / INDEX_DIR / "locations.npy", allow_pickle=False)
    assert stored.dtype == np.dtype(dtype)
    assert stored.astype("<u8").tolist() == rows.tolist()
    assert dtypes["key_order"] == dtypes["key_offsets"] == "<u4"
    order = np.load(tmp_path / INDEX_DIR / "key_order.npy", allow_pickle=False)
    assert order.dtype == np.dtype("<u4") and order.tolist() == [1, 0]


def test_the_narrowest_dtype_is_chosen_at_the_uint32_boundary() -> None:
    assert narrowest(0) == narrowest(2**32 - 1) == "<u4"
    assert narrowest(2**32) == narrowest(2**63) == "<u8"


def test_index_bytes_per_sample_shrink_by_twenty(tmp_path: Path) -> None:
    """What version 2 saves, measured on files: 20 of the 50 fixed bytes a sample."""
    n = 1000
    rows = np.stack([np.zeros(n), np.arange(n) * 100, np.full(n, 100)], axis=1).astype("<u8")
    _write_index(tmp_path, rows, [b"%05d" % i for i in range(n)])
    arrays = sum((tmp_path / INDEX_DIR / f"{name}.npy").stat().st_size for name in V1_DTYPES)
    header = 128 * len(V1_DTYPES)
    assert (arrays - header - 4) / n == 30  # key_offsets has n + 1 entries
