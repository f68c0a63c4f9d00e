"""Edited or damaged packs give a PackerError (or a verify report), never a crash or a hang."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from packer import convert, open_pack, verify_pack
from packer.errors import PackerError, PackError


@pytest.fixture(scope="module")
def good_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from packer.demo import make_demo_tree

    tree = make_demo_tree(tmp_path_factory.mktemp("t") / "tree", per_class=5, size=16)
    dst = tmp_path_factory.mktemp("p") / "good.pack"
    convert(tree, dst, "tar", samples_per_shard=6)
    return dst


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / f"copy{len(list(tmp_path.iterdir()))}.pack"
    shutil.copytree(src, dst)
    return dst


def _read_everything(path: Path) -> None:
    with open_pack(path) as p:
        for i in range(len(p)):
            p[i]
        list(p.keys())
        p.get(p.key(0))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(format_version=99), "version 99 is not supported"),
        (lambda m: m["backend"].update(name="nonesuch"), "unknown format 'nonesuch'"),
        (lambda m: m.update(num_samples=3), "do not add up"),
        (lambda m: m.update(num_samples="20"), "non-negative integer"),
        (lambda m: m["data_files"][0].update(name="../../etc/passwd"), "not a plain file name"),
        (lambda m: m.update(classes=None), "must be a list"),
        (lambda m: m.update(format="zarr"), "not a packer manifest"),
        (lambda m: m["index"].pop("dtypes"), "field index.dtypes must be an object"),
        (
            lambda m: m["index"]["dtypes"].update(locations="|O"),
            "index.dtypes.locations must be <u4 or <u8",
        ),
        (
            lambda m: m["index"]["dtypes"].update(labels="<u4"),
            "index.dtypes.labels must be <i4",
        ),
    ],
)
def test_edited_manifest_is_refused(
    good_pack: Path, tmp_path: Path, edit: Any, message: str
) -> None:
    pack = _copy(good_pack, tmp_path)
    manifest = json.loads((pack / "manifest.json").read_text())
    edit(manifest)
    (pack / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackerError, match=message):
        open_pack(pack)
    assert not verify_pack(pack).ok


def test_index_with_wrong_shape_is_refused(good_pack: Path, tmp_path: Path) -> None:
    pack = _copy(good_pack, tmp_path)
    np.save(pack / "index" / "labels.npy", np.zeros(3, np.int32))
    with pytest.raises(PackError, match="does not match the manifest"):
        open_pack(pack)


def test_pickled_object_array_is_never_loaded(good_pack: Path, tmp_path: Path) -> None:
    pack = _copy(good_pack, tmp_path)
    np.save(
        pack / "index" / "labels.npy", np.array([object()] * 20, dtype=object), allow_pickle=True
    )
    with pytest.raises(PackError, match="labels.npy"):
        open_pack(pack)


COLUMNS = {"locations": 3, "labels": 1, "extension": 1, "key_offsets": 1, "key_order": 1}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    array=st.sampled_from(sorted(COLUMNS)),
    row=st.integers(0, 19),
    value=st.one_of(st.integers(0, 2**16), st.integers(2**16, 2**63)),
    column=st.integers(0, 2),
)
def test_mutated_index_values_never_crash(
    good_pack: Path,
    tmp_path_factory: pytest.TempPathFactory,
    array: str,
    row: int,
    value: int,
    column: int,
) -> None:
    pack = _copy(good_pack, tmp_path_factory.mktemp("m"))
    path = pack / "index" / f"{array}.npy"
    arr = np.load(path, allow_pickle=False)
    info = np.iinfo(arr.dtype)
    value = min(value, int(info.max))
    where = (row, column % arr.shape[1]) if arr.ndim == 2 else (row,)
    assume(int(arr[where]) != value)
    arr[where] = value
    np.save(path, arr)
    with contextlib.suppress(PackerError, KeyError):
        _read_everything(pack)
    assert not verify_pack(pack).ok


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=st.floats(0, 1), data=st.binary(min_size=1, max_size=8))
def test_damaged_data_file_is_reported(
    good_pack: Path, tmp_path_factory: pytest.TempPathFactory, position: float, data: bytes
) -> None:
    pack = _copy(good_pack, tmp_path_factory.mktemp("d"))
    shard = pack / "shard-00001.tar"
    blob = bytearray(shard.read_bytes())
    at = int(position * (len(blob) - len(data)))
    assume(blob[at : at + len(data)] != data)
    blob[at : at + len(data)] = data
    shard.write_bytes(bytes(blob))
    report = verify_pack(pack)
    assert not report.ok
    assert any("shard-00001.tar" in p.where for p in report.problems)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_manifest_never_crashes(
    good_pack: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    original = json.loads((good_pack / "manifest.json").read_text())
    manifest = json.loads((good_pack / "manifest.json").read_text())
    target = data.draw(st.sampled_from(_paths(manifest)[1:]))
    parent = manifest
    for part in target[:-1]:
        parent = parent[part]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[target[-1]]
    else:
        parent[target[-1]] = data.draw(json_values)
    assume(manifest != original)
    pack = _copy(good_pack, tmp_path_factory.mktemp("mm"))
    (pack / "manifest.json").write_text(json.dumps(manifest))
    with contextlib.suppress(PackerError, KeyError):
        _read_everything(pack)
    report = verify_pack(pack)  # must report, never raise
    if target[0] in VERIFIED_FIELDS or target[:2] == ("backend", "name"):
        assert not report.ok, target  # a field verify relies on: the change is always found


#: manifest fields that verify checks against the files (others describe, e.g. created_by)
VERIFIED_FIELDS = {"format", "format_version", "data_files", "index", "num_samples", "class_counts"}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("format_version",), 3),
        (("format_version",), 1),  # version 1 indexes are uint64: these arrays are narrower
        (("index", "dtypes", "locations"), "<u8"),
        (("index", "dtypes", "key_order"), "<u8"),
        (("num_samples",), 5),
        (("class_counts", 0), 99),
        (("data_files", 0, "sha256"), "0" * 64),
        (("data_files", 0, "bytes"), 12),
        (("data_files", 0, "name"), "shard-99999.tar"),
        (("index", "sha256", "index/labels.npy"), "0" * 64),
        (("index", "sha256", "index/keys.bin"), "f" * 64),
        (("backend", "name"), "tarr"),
    ],
)
def test_each_verified_field_is_checked(
    good_pack: Path, tmp_path: Path, path: tuple[Any, ...], value: Any
) -> None:
    """A plausible wrong value (right type) in any field verify relies on is reported."""
    manifest = json.loads((good_pack / "manifest.json").read_text())
    parent = manifest
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    pack = _copy(good_pack, tmp_path)
    (pack / "manifest.json").write_text(json.dumps(manifest))
    assert not verify_pack(pack).ok
