"""Each format is readable by its own standard tools, without packer, and equal to the source."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packer import convert, open_pack
from packer.backends.base import member_stem
from packer.backends.tar import _tarfile_header, fast_header
from packer.testing import imagefolder_order, make_edge_tree


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_edge_tree(tmp_path_factory.mktemp("src") / "tree")


@settings(max_examples=300, deadline=None)
@given(
    name=st.one_of(
        st.text(
            alphabet=st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=120
        ),
        st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s),
    ),
    size=st.one_of(st.integers(0, 10**7), st.integers(8**11 - 2, 8**11 + 2)),
)
def test_fast_tar_header_equals_tarfile(name: str, size: int) -> None:
    assert fast_header(name, size) == _tarfile_header(name, size)


def _expected(source: Path) -> dict[str, bytes]:
    return {rel: (source / rel).read_bytes() for rel, _ in imagefolder_order(source)[1]}


def test_tar_members_read_back_with_tarfile(source: Path, tmp_path: Path) -> None:
    convert(source, tmp_path / "p", "tar", samples_per_shard=5)
    expected = _expected(source)
    with open_pack(tmp_path / "p") as pack:
        by_member = {f"{member_stem(s.key)}.{s.ext}": (s.key, s.ext, s.label) for s in pack}
    found = {}
    for shard in sorted((tmp_path / "p").glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                f = tar.extractfile(m)
                assert f is not None and m.mtime == 0 and m.uid == 0 and m.mode == 0o644
                found[m.name] = f.read()
    for name, (key, ext, label) in by_member.items():
        assert found[name] == expected[f"{key}.{ext}"]
        assert found[name[: -len(ext)] + "cls"] == str(label).encode()
    assert len(found) == 2 * len(expected)


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar not installed")
def test_gnu_tar_lists_and_extracts(source: Path, tmp_path: Path) -> None:
    convert(source, tmp_path / "p", "tar")
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(
        ["tar", "-xf", str(tmp_path / "p" / "shard-00000.tar"), "-C", str(out)], check=True
    )
    assert (out / "cat" / "a.jpg").read_bytes() == (source / "cat" / "a.jpg").read_bytes()
    assert (out / "dog" / "ünïcödé 🐱.png").read_bytes() == (
        source / "dog" / "ünïcödé 🐱.png"
    ).read_bytes()
    assert (out / "cat" / "img%2E001.jpg").read_bytes() == (
        source / "cat" / "img.001.jpg"
    ).read_bytes()


# webdataset leaves its shard file objects for the garbage collector to close (its bug, not ours).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_webdataset_reads_tar_shards(source: Path, tmp_path: Path) -> None:
    wds = pytest.importorskip("webdataset")
    convert(source, tmp_path / "p", "tar", samples_per_shard=4)
    shards = [str(p) for p in sorted((tmp_path / "p").glob("shard-*.tar"))]
    samples = list(wds.WebDataset(shards, shardshuffle=False, empty_check=False))
    with open_pack(tmp_path / "p") as pack:
        assert len(samples) == len(pack)
        for got, want in zip(samples, pack, strict=True):
            assert got["__key__"] == member_stem(want.key)
            assert got[want.ext.lower()] == want.data  # webdataset lower-cases extensions
            assert int(got["cls"]) == want.label


@pytest.mark.parametrize("compression", ["stored", "deflate"])
def test_zip_reads_back_with_zipfile(source: Path, tmp_path: Path, compression: str) -> None:
    convert(
        source, tmp_path / "p", "zip", samples_per_shard=6, options={"compression": compression}
    )
    expected = _expected(source)
    found = {}
    for shard in sorted((tmp_path / "p").glob("shard-*.zip")):
        with zipfile.ZipFile(shard) as z:
            assert z.testzip() is None
            for info in z.infolist():
                assert info.date_time == (1980, 1, 1, 0, 0, 0)
                found[info.filename] = z.read(info)
    with open_pack(tmp_path / "p") as pack:
        assert {f"{member_stem(s.key)}.{s.ext}": s.data for s in pack} == found
        assert sorted(found.values()) == sorted(expected.values())


@pytest.mark.skipif(shutil.which("unzip") is None, reason="unzip not installed")
def test_unzip_accepts_zip_shards(source: Path, tmp_path: Path) -> None:
    convert(source, tmp_path / "p", "zip")
    result = subprocess.run(
        ["unzip", "-t", str(tmp_path / "p" / "shard-00000.zip")], capture_output=True, text=True
    )
    assert result.returncode == 0 and "No errors detected" in result.stdout
