"""The external key sort gives exactly Python's (bytes, id) order, however the keys are cut into runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import packer._util.keysort as keysort
from packer.errors import UsageError

KEY = st.binary(max_size=6).map(lambda b: b.replace(b"\0", b"a"))  # keys never hold NUL


def _order(keys: list[bytes], spill: Path, *, unique: bool = False) -> list[int]:
    blob = b"".join(keys)
    offsets = np.concatenate([[0], np.cumsum([len(k) for k in keys])]).astype(np.uint64)
    out: list[np.ndarray] = []
    keysort.key_order(
        lambda x, y: blob[x:y],
        lambda a, b: offsets[a : b + 1],
        len(keys),
        max(map(len, keys), default=0),
        spill,
        out.append,
        unique=unique,
    )
    assert not spill.exists(), "the runs are removed"
    return np.concatenate(out).tolist() if out else []


@settings(max_examples=150, deadline=None)
@given(keys=st.lists(KEY, max_size=400), run_bytes=st.sampled_from([14, 100, 1000, 1 << 20]))
def test_key_order_is_python_sort(
    tmp_path_factory: pytest.TempPathFactory, keys: list[bytes], run_bytes: int
) -> None:
    spill = tmp_path_factory.mktemp("spill") / "runs"
    saved = keysort.RUN_BYTES
    keysort.RUN_BYTES = run_bytes  # tiny runs: many spilled runs and merge windows
    try:
        got = _order(keys, spill)
    finally:
        keysort.RUN_BYTES = saved
    assert got == sorted(range(len(keys)), key=lambda i: (keys[i], i))


@pytest.mark.parametrize("run_bytes", [40, 1 << 20])
def test_a_key_given_twice_is_found_across_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_bytes: int
) -> None:
    monkeypatch.setattr(keysort, "RUN_BYTES", run_bytes)
    keys = [f"k{i:03d}".encode() for i in range(50)] + [b"k017"]
    with pytest.raises(UsageError, match="'k017' is given to two samples"):
        _order(keys, tmp_path / "runs", unique=True)
    assert not (tmp_path / "runs").exists()
    distinct = [f"k{i:03d}".encode() for i in range(50)]
    assert _order(distinct[::-1], tmp_path / "runs", unique=True) == list(range(49, -1, -1))
