"""Identical bytes under two labels are found in bounded memory, with the pairs the plain sort gives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import packer.conversion.findings as findings
from packer.source.omissions import MAX_LISTED


def _reference(labels: np.ndarray, crcs: np.ndarray, lengths: np.ndarray) -> list[tuple[int, ...]]:
    """The whole-array rule: sort by (CRC-32, length, label, sample); pairs straddle two labels."""
    order = np.lexsort((labels, lengths, crcs))
    same = (crcs[order][1:] == crcs[order][:-1]) & (lengths[order][1:] == lengths[order][:-1])
    differ = labels[order][1:] != labels[order][:-1]
    return [
        (int(order[h]), int(labels[order[h]]), int(order[h + 1]), int(labels[order[h + 1]]))
        for h in np.flatnonzero(same & differ)[:MAX_LISTED].tolist()
    ]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), st.integers(0, 2)), max_size=300),
    block=st.integers(1, 64),
    held=st.sampled_from([2, 50, 1 << 18]),
)
def test_candidate_pairs_match_the_whole_array_sort(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[int, int, int]],
    block: int,
    held: int,
) -> None:
    labels = np.array([r[0] for r in rows], dtype=np.int32)
    crcs = np.array([r[1] for r in rows], dtype=np.uint32) * np.uint32(0x9E3779B1)
    lengths = np.array([r[2] for r in rows], dtype=np.uint64)
    blocks = [
        (labels[a : a + block], crcs[a : a + block], lengths[a : a + block])
        for a in range(0, len(rows), block)
    ]
    spill = tmp_path_factory.mktemp("d") / "spill"
    got = findings._candidate_pairs(blocks, spill, held)  # small: rows spill into CRC buckets
    assert got == _reference(labels, crcs, lengths)
    assert not spill.exists()
