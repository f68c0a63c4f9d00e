"""PathTable: the compact path list behaves exactly like the list of str it replaces."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packer._util.pathtable import PathTable

# POSIX names: any characters but NUL and "/", including surrogates from non-UTF-8 bytes
names = st.text(
    alphabet=st.characters(exclude_characters="\0/", exclude_categories=["Cs"])
    | st.sampled_from(["\udce9", "\udcff", "é", " ", "\n"]),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(paths=st.lists(names, max_size=30), a=st.integers(-35, 35), b=st.integers(-35, 35))
def test_behaves_like_a_list(paths: list[str], a: int, b: int) -> None:
    table = PathTable.from_strings(paths)
    assert len(table) == len(paths)
    assert list(table) == paths and table == paths
    assert [table[i] for i in range(-len(paths), len(paths))] == paths + paths
    assert list(table[a:b]) == paths[a:b] and len(table[a:b]) == len(paths[a:b])
    assert list(table[a:b][1:]) == paths[a:b][1:]  # slices of slices
    assert list(table[::2]) == paths[::2]
    assert pickle.loads(pickle.dumps(table)) == paths
    blob, offsets = table.encoded()  # the plan's on-disk form, without terminators
    assert blob == "".join(paths).encode("utf-8", "surrogateescape")
    assert PathTable.from_encoded(blob, offsets) == paths


def test_out_of_range_and_damaged_input() -> None:
    table = PathTable.from_strings(["a/x.png", "b/y.png"])
    with pytest.raises(IndexError):
        table[2]
    with pytest.raises(ValueError, match="offsets"):
        PathTable.from_encoded(b"abc", np.array([0, 5], dtype="<u8"))
    with pytest.raises(ValueError, match="NUL"):
        PathTable.from_encoded(b"a\0c", np.array([0, 3], dtype="<u8"))


def test_iteration_crosses_decode_blocks() -> None:
    paths = [f"c{i % 7}/{i:07d}.png" for i in range(150_000)]  # more than two 65536-path blocks
    table = PathTable.from_strings(paths)
    assert list(table) == paths
    assert table.nbytes < sum(len(p) + 9 for p in paths) + 16


@settings(max_examples=300, deadline=None)
@given(
    paths=st.lists(
        st.builds(
            lambda d, n, e: f"{d}/{n}{e}" if d else f"{n}{e}",
            names,
            names,
            st.sampled_from(
                ["", ".", ".png", ".JPG", ".jpeg", ".tar.gz", ".verylongext", ".\udcff" * 5]
            ),
        ),
        max_size=40,
    )
)
def test_extensions_follow_split_name(paths: list[str]) -> None:
    from packer.format.keys import split_name

    names_, ids = PathTable.from_strings(paths).extensions()
    assert names_ == sorted({split_name(p)[1] for p in paths})
    assert [names_[i] for i in ids.tolist()] == [split_name(p)[1] for p in paths]


def test_extensions_across_blocks() -> None:
    from packer.format.keys import split_name

    exts = [".png", ".JPG", "", ".webp", ".averylongextension", ".tar.gz"]
    paths = [f"c{i % 7}/img.{i}{exts[i % len(exts)]}" for i in range(70_000)]
    names_, ids = PathTable.from_strings(paths).extensions()
    assert [names_[i] for i in ids[::997].tolist()] == [split_name(p)[1] for p in paths[::997]]
    assert names_ == sorted({split_name(p)[1] for p in paths})
