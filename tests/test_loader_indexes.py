"""Tar packs carry wids and DALI indexes: read with the real wids package, and compared with what
DALI's own index tool (wds2idx) derives from the tar, parsed as DALI's reader parses it."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from packer import convert, open_pack, verify_pack
from packer.backends.tar_loaders import DALI_DIR, WIDS_FILE

Record = tuple[str, int, int, str]  # ext, payload offset, size, member name


def wds2idx_records(tar_path: Path) -> list[list[Record]]:
    """DALI's tools/wds2idx.py (its tarfile path): regular members grouped by the base name up to
    the first dot of the file name, each as (ext, payload offset, size, name)."""
    samples: list[list[Record]] = []
    last = None
    with tarfile.open(tar_path) as archive:
        for member in archive:
            if member.type != tarfile.REGTYPE:
                continue
            name = member.name
            dot = name.find(".", name.rfind("/") + 1)
            base, ext = name[:dot], name[dot + 1 :]
            if not base or base.endswith("/"):
                continue
            if base != last:
                samples.append([])
                last = base
            samples[-1].append((ext, member.offset_data, member.size, name))
    return samples


def wds2idx(tar_path: Path) -> str:
    samples = wds2idx_records(tar_path)
    lines = [" ".join(" ".join(map(str, c)) for c in s) for s in samples]
    return f"v1.2 {len(samples)}\n" + "".join(line + "\n" for line in lines)


def parse_dali_index(text: str) -> list[list[tuple[str, int, int]]]:
    """As DALI's ParseIndexFile: whitespace-separated tokens, v1.1 or v1.2, offsets on blocks."""
    lines = text.split("\n")
    version, count = lines[0].split()
    assert version in ("v1.1", "v1.2") and int(count) > 0
    step = 4 if version == "v1.2" else 3
    samples = []
    for line in lines[1 : 1 + int(count)]:
        tokens = line.split()
        assert tokens and len(tokens) % step == 0, line
        members = []
        for k in range(0, len(tokens), step):
            ext, offset, size = tokens[k], int(tokens[k + 1]), int(tokens[k + 2])
            assert offset % 512 == 0
            members.append((ext, offset, size))
        samples.append(members)
    return samples


def _tree(root: Path, *odd_names: str) -> Path:
    from packer.demo import make_demo_tree

    tree = make_demo_tree(root, per_class=9, size=16)
    for name in odd_names:
        (tree / "circle" / name).write_bytes((tree / "circle" / "circle_0000.jpg").read_bytes())
    return tree


ODD = ("x" * 120 + ".png", "caf\u00e9.jpg", "v1.2.final.png")  # pax headers, non-ASCII, dots


@pytest.mark.parametrize("labels", ["member", "none"])
def test_dali_indexes_are_what_wds2idx_derives_from_each_shard(tmp_path: Path, labels: str) -> None:
    tree = _tree(tmp_path / "tree", *ODD)
    pack = convert(
        tree, tmp_path / "p", "tar", options={"labels": labels}, samples_per_shard=7, cut="fixed"
    )
    shards = sorted(pack.path.glob("shard-*.tar"))
    assert len(shards) == 6
    position = 0
    with open_pack(pack.path) as p:
        for shard in shards:
            text = (pack.path / DALI_DIR / shard.with_suffix(".idx").name).read_text()
            assert text == wds2idx(shard)  # byte for byte, names included
            raw = shard.read_bytes()
            for members in parse_dali_index(text):
                ext, offset, size = members[0]
                assert ext == p[position].ext and raw[offset : offset + size] == p.read(position)
                if labels == "member":
                    assert members[1][0] == "cls"
                    _, offset, size = members[1]
                    assert raw[offset : offset + size] == b"%d" % p.label(position)
                else:
                    assert len(members) == 1
                position += 1
        assert position == len(p)
    assert not (pack.path / WIDS_FILE).exists()  # a 124-byte member name: wids could not read it


def test_a_name_with_a_space_gets_a_v1_1_index(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", "my photo.jpg")
    pack = convert(tree, tmp_path / "p", "tar").path
    text = (pack / DALI_DIR / "shard-00000.idx").read_text()
    assert text.startswith("v1.1 ")  # "my photo" would split a v1.2 record
    expected = [[r[:3] for r in s] for s in wds2idx_records(pack / "shard-00000.tar")]
    assert parse_dali_index(text) == expected
    assert (pack / WIDS_FILE).exists()  # wids has no trouble with spaces


def test_wids_reads_every_sample_through_its_index(tmp_path: Path) -> None:
    wids = pytest.importorskip("wids")
    tree = _tree(tmp_path / "tree", "caf\u00e9.jpg", "v1.2.final.png", "my photo.jpg")
    pack = convert(tree, tmp_path / "p", "tar", samples_per_shard=10).path
    doc = json.loads((pack / WIDS_FILE).read_text())
    assert doc["__kind__"] == "wids-shard-index-v1" and "md5sum" not in doc["shardlist"][0]
    dataset = wids.ShardListDataset(
        str(pack / WIDS_FILE), cache_dir=str(tmp_path / "cache"), transformations=[]
    )
    with open_pack(pack) as p:
        assert len(dataset) == len(p)
        for i in range(len(p)):
            sample, stored = dataset[i], p[i]
            assert sample[f".{stored.ext}"].read() == stored.data
            assert int(sample[".cls"].read()) == stored.label


def test_loader_indexes_are_checked_by_verify_and_can_be_turned_off(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree")
    pack = convert(tree, tmp_path / "p", "tar").path
    manifest = json.loads((pack / "manifest.json").read_text())
    assert {WIDS_FILE, f"{DALI_DIR}/shard-00000.idx"} <= set(manifest["index"]["sha256"])
    doc = json.loads((pack / WIDS_FILE).read_text())
    doc["shardlist"][0]["nsamples"] += 1
    (pack / WIDS_FILE).write_text(json.dumps(doc))
    report = verify_pack(pack)
    assert not report.ok and [p.where for p in report.problems] == [str(pack / WIDS_FILE)]
    off = convert(tree, tmp_path / "off", "tar", options={"loader_indexes": "false"}).path
    assert not (off / WIDS_FILE).exists() and not (off / DALI_DIR).exists()
    assert verify_pack(off).ok


def test_verify_rederives_loader_indexes_from_the_pack_index(tmp_path: Path) -> None:
    import hashlib

    tree = _tree(tmp_path / "tree")
    pack = convert(tree, tmp_path / "p", "tar").path
    idx = pack / DALI_DIR / "shard-00000.idx"
    stale = idx.read_text().replace(" 512 ", " 1024 ", 1)  # consistent with an edited manifest
    idx.write_text(stale)
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest["index"]["sha256"][f"{DALI_DIR}/shard-00000.idx"] = hashlib.sha256(
        stale.encode()
    ).hexdigest()
    (pack / "manifest.json").write_text(json.dumps(manifest))
    report = verify_pack(pack)
    assert [(p.where, p.message) for p in report.problems] == [
        (str(idx), "does not match the pack index; re-create the pack")
    ]
