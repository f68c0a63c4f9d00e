"""Each format is readable by its own standard tools, without packer, and equal to the source."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packer import convert
from packer.backends.names import member_stem
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


def test_tar_block_sizes_are_tarfiles() -> None:
    import tarfile

    from packer.backends import tar

    assert (tar._BLOCK, tar._RECORD) == (tarfile.BLOCKSIZE, tarfile.RECORDSIZE)


def test_opening_a_pack_to_read_imports_no_archive_writer(tmp_path: Path) -> None:
    """tarfile and zipfile cost ~2 ms of an open; reading is byte ranges and needs neither."""
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    (src / "x.bin").write_bytes(b"payload")
    for fmt in ("tar", "zip"):
        convert(tmp_path / "src", tmp_path / fmt, fmt, extensions="*")
    code = (
        "import sys, packer\n"
        "for p in sys.argv[1:]: packer.open_pack(p)[0]\n"
        "print(sorted({'tarfile', 'zipfile'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "tar"), str(tmp_path / "zip")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "[]"


def _expected(source: Path) -> dict[str, bytes]:
    return {rel: (source / rel).read_bytes() for rel, _ in imagefolder_order(source)[1]}


def _key(rel: str, rels: list[str]) -> str:
    """The documented key rule, re-implemented for the edge tree: the path without its extension,
    or the whole path when another file in the folder has the same stem."""
    stem = rel.rsplit(".", 1)[0]
    return rel if sum(r.rsplit(".", 1)[0] == stem for r in rels) > 1 else stem


def _source_rows(source: Path) -> list[tuple[str, int, bytes, str]]:
    """(key, label, bytes, ext) of every sample, in pack order, from the source tree itself."""
    expected = imagefolder_order(source)[1]
    rels = [rel for rel, _ in expected]
    return [
        (_key(rel, rels), label, (source / rel).read_bytes(), rel.rsplit(".", 1)[1])
        for rel, label in expected
    ]


def test_tar_members_read_back_with_tarfile(source: Path, tmp_path: Path) -> None:
    convert(source, tmp_path / "p", "tar", samples_per_shard=5)
    found = {}
    for shard in sorted((tmp_path / "p").glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                f = tar.extractfile(m)
                assert f is not None and m.mtime == 0 and m.uid == 0 and m.mode == 0o644
                found[m.name] = f.read()
    rows = _source_rows(source)
    for key, label, data, ext in rows:
        assert found[f"{member_stem(key)}.{ext}"] == data
        assert found[f"{member_stem(key)}.cls"] == str(label).encode()
    assert len(found) == 2 * len(rows)


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
    rows = _source_rows(source)
    assert len(samples) == len(rows)
    for got, (key, label, data, ext) in zip(samples, rows, strict=True):
        assert got["__key__"] == member_stem(key)
        assert got[ext.lower()] == data  # webdataset lower-cases extensions
        assert int(got["cls"]) == label


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
    assert found == {f"{member_stem(k)}.{ext}": data for k, _, data, ext in _source_rows(source)}
    assert sorted(found.values()) == sorted(expected.values())


@pytest.mark.skipif(shutil.which("unzip") is None, reason="unzip not installed")
def test_unzip_accepts_zip_shards(source: Path, tmp_path: Path) -> None:
    convert(source, tmp_path / "p", "zip")
    result = subprocess.run(
        ["unzip", "-t", str(tmp_path / "p" / "shard-00000.zip")], capture_output=True, text=True
    )
    assert result.returncode == 0 and "No errors detected" in result.stdout


def test_lmdb_reads_back_with_plain_lmdb(source: Path, tmp_path: Path) -> None:
    import lmdb

    convert(source, tmp_path / "p", "lmdb", samples_per_shard=6)
    found: dict[bytes, bytes] = {}
    for shard in sorted((tmp_path / "p").glob("shard-*.lmdb")):
        env = lmdb.open(str(shard), subdir=False, readonly=True, lock=False)
        with env.begin() as txn:
            found.update(txn.cursor())
        env.close()
    rows = _source_rows(source)
    assert found == {key.encode(): data for key, _, data, _ in rows}


def test_hdf5_reads_back_with_plain_h5py(source: Path, tmp_path: Path) -> None:
    import h5py

    convert(source, tmp_path / "p", "hdf5", samples_per_shard=6)
    rows = []
    for shard in sorted((tmp_path / "p").glob("shard-*.h5")):
        with h5py.File(shard, "r") as f:
            assert f["data"].chunks is None  # contiguous
            off = f["offsets"][:]
            for j in range(len(off) - 1):
                rows.append(
                    (
                        f["keys"][j].decode(),
                        int(f["labels"][j]),
                        f["data"][off[j] : off[j + 1]].tobytes(),
                    )
                )
    assert rows == [row[:3] for row in _source_rows(source)]


def test_memmap_reads_back_with_numpy(source: Path, tmp_path: Path) -> None:
    import numpy as np

    convert(source, tmp_path / "p", "memmap", samples_per_shard=6)
    loc = np.load(tmp_path / "p" / "index" / "locations.npy", mmap_mode="r")
    blobs = {
        i: np.memmap(p, dtype=np.uint8, mode="r")
        for i, p in enumerate(sorted((tmp_path / "p").glob("shard-*.bin")))
    }
    datas = [blobs[int(f)][int(o) : int(o) + int(n)].tobytes() for f, o, n in loc]
    labels = np.load(tmp_path / "p" / "index" / "labels.npy").tolist()
    assert list(zip(labels, datas, strict=True)) == [
        (label, data) for _, label, data, _ in _source_rows(source)
    ]


def _table_rows(table: Any) -> list[tuple[str, int, bytes]]:
    """(key, label, data) rows of an Arrow table read from an arrow or parquet shard."""
    columns = (table.column(name).to_pylist() for name in ("key", "label", "data"))
    return list(zip(*columns, strict=True))


def test_arrow_reads_back_with_pyarrow(source: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    convert(source, tmp_path / "p", "arrow", samples_per_shard=6, options={"batch_rows": 4})
    rows = []
    for shard in sorted((tmp_path / "p").glob("shard-*.arrow")):
        with pa.memory_map(str(shard)) as source_file:
            table = ipc.open_file(source_file).read_all()
            assert table.schema.field("data").type == pa.binary()
            rows += _table_rows(table)
    assert rows == [row[:3] for row in _source_rows(source)]


def test_parquet_reads_back_with_pyarrow(source: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    convert(source, tmp_path / "p", "parquet", samples_per_shard=6, options={"row_group_rows": 4})
    rows = []
    for shard in sorted((tmp_path / "p").glob("shard-*.parquet")):
        meta = pq.ParquetFile(shard).metadata
        assert meta.num_row_groups == -(-meta.num_rows // 4)
        data_column = meta.row_group(0).column(2)
        assert data_column.compression == "UNCOMPRESSED" and not data_column.is_stats_set
        table = pq.read_table(shard)
        rows += _table_rows(table)
    assert rows == [row[:3] for row in _source_rows(source)]


def test_duckdb_queries_parquet_shards(source: Path, tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    convert(source, tmp_path / "p", "parquet", samples_per_shard=6)
    glob = str(tmp_path / "p" / "shard-*.parquet")
    con = duckdb.connect()
    count, total, labels = con.execute(
        f"SELECT count(*), sum(octet_length(data)), sum(label) FROM '{glob}'"
    ).fetchall()[0]
    samples = _source_rows(source)
    assert count == len(samples)
    assert total == sum(len(d) for _, _, d, _ in samples)
    assert labels == sum(label for _, label, _, _ in samples)
    key, data = con.execute(f"SELECT key, data FROM '{glob}' WHERE key = 'cat/a'").fetchall()[0]
    assert data == (source / "cat" / "a.jpg").read_bytes() and key == "cat/a"


def test_pixel_memmap_shards_load_with_numpy(source: Path, tmp_path: Path) -> None:
    import numpy as np

    from packer.images.transforms import Transform

    t = Transform(size=(10, 14), mode="L")
    convert(source, tmp_path / "p", "memmap", samples_per_shard=6, transform=t)
    arrays = [np.load(p, mmap_mode="r") for p in sorted((tmp_path / "p").glob("shard-*.npy"))]
    stacked = np.concatenate(arrays)
    assert stacked.shape == (len(imagefolder_order(source)[1]), 10, 14, 1)
    for (rel, _), row in zip(imagefolder_order(source)[1], stacked, strict=True):
        assert np.array_equal(row, t.pixels((source / rel).read_bytes()))
