"""Real-world trees: the right samples with the right labels, nothing valid rejected, every
omission reported. One test (or more) per case of the real-world-trees issue; each builds its files."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from oddimages import VALID, encode, noise, png_chunk, tiff16, tiff_float
from packer import open_pack
from packer.api import convert, verify_pack
from packer.backends.registry import BUILTIN_BACKENDS
from packer.errors import SourceError, UsageError
from packer.images.transforms import Transform
from packer.read.extract import extract
from packer.source.scanner import parse_extensions, scan_tree
from packer.testing import imagefolder_order, tree_digest


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def real_tree(root: Path) -> Path:
    """A tree as users have them: phone JPEGs with padding, odd BMPs, 16-bit TIFFs, macOS junk,
    notes, files at the root, a non-UTF-8 name, names differing only by extension."""
    for i, name in enumerate(sorted(VALID)):
        ext, make = VALID[name]
        write(root / ("photos" if i % 2 else "scans") / f"{name}.{ext}", make())
    write(root / "photos" / "star.png", encode(noise(6, 6, seed=1), "PNG"))
    write(root / "photos" / "star.jpg", encode(noise(6, 6, seed=2), "JPEG"))
    write(root / "photos" / "a.png.png", encode(noise(6, 6, seed=3), "PNG"))
    write(root / "__MACOSX" / "photos" / "._star.png", b"\x00\x05\x16\x07junk")
    write(root / "photos" / "._star.png", b"\x00\x05\x16\x07junk")
    write(root / "photos" / ".DS_Store", b"junk")
    write(root / "scans" / "README.txt", b"scanned at 600 dpi")
    write(root / "scans" / "deep" / "nested" / "n.png", encode(noise(5, 5, seed=4), "PNG"))
    write(root / "LICENSE", b"CC-BY")
    write(root / "stray.jpg", VALID["jpeg"][1]())
    with open(os.fsencode(root / "scans") + b"/latin1-\xe9.png", "wb") as f:
        f.write(encode(noise(4, 4, seed=5), "PNG"))
    return root


# -- 1, 2: symlinks ---------------------------------------------------------------------------


def test_link_back_to_src_or_an_ancestor_is_walked_once(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "a" / "photo_0.png", encode(noise(4, 4), "PNG"))
    write(src / "b" / "photo_1.png", encode(noise(4, 4, seed=1), "PNG"))
    (src / "b" / "up").symlink_to("..")  # SRC itself
    (src / "b" / "top").symlink_to("../..")  # a folder above SRC
    (src / "b" / "again").symlink_to("../a")  # a second way into class a
    scan = scan_tree(src)
    assert scan.paths == ["a/photo_0.png", "b/photo_1.png"]
    assert scan.labels.tolist() == [0, 1]
    twice = {f.path: f.message for f in scan.findings if f.kind == "folder-reached-twice"}
    assert set(twice) == {"b/up", "b/top", "b/again"}
    assert "SRC itself" in twice["b/up"] and "above SRC" in twice["b/top"]
    assert "a, which is packed already" in twice["b/again"]


def test_two_links_to_one_outside_folder_are_walked_once(tmp_path: Path) -> None:
    src, shared = tmp_path / "src", tmp_path / "shared"
    write(shared / "x.png", encode(noise(4, 4), "PNG"))
    (src / "c").mkdir(parents=True)
    (src / "c" / "one").symlink_to(shared)
    (src / "c" / "two").symlink_to(shared)
    scan = scan_tree(src, symlinks="follow")
    assert scan.paths == ["c/one/x.png"]
    assert [f.path for f in scan.findings if f.kind == "folder-reached-twice"] == ["c/two"]


def test_symlink_policy(tmp_path: Path) -> None:
    src, outside = tmp_path / "src", tmp_path / "passwd.jpg"
    outside.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    write(src / "c" / "real.png", encode(noise(4, 4), "PNG"))
    (src / "c" / "leak.jpg").symlink_to(outside)
    (src / "c" / "inner.png").symlink_to("real.png")  # stays inside SRC
    default = scan_tree(src)
    assert default.paths == ["c/inner.png", "c/real.png"]
    leaving = [f for f in default.findings if f.kind == "symlink-outside"]
    assert [f.path for f in leaving] == ["c/leak.jpg"] and "--symlinks follow" in leaving[0].message
    followed = scan_tree(src, symlinks="follow")
    assert followed.paths == ["c/inner.png", "c/leak.jpg", "c/real.png"]
    assert any(str(outside) in f.message for f in followed.findings)
    assert scan_tree(src, symlinks="skip").paths == ["c/real.png"]
    # with validation off, a followed link's bytes go in as they are: the warning is the safeguard
    report = convert(src, tmp_path / "p", "zip", validate="none", symlinks="follow")
    assert any(w.path == "c/leak.jpg" for w in report.warnings)
    with pytest.raises(UsageError, match="--symlinks"):
        scan_tree(src, symlinks="sometimes")


def test_linked_class_folder_outside_src_keeps_its_label(tmp_path: Path) -> None:
    src, elsewhere = tmp_path / "src", tmp_path / "pool" / "dogs"
    write(src / "cat" / "c.png", encode(noise(4, 4), "PNG"))
    write(src / "emu" / "e.png", encode(noise(4, 4, seed=2), "PNG"))
    write(elsewhere / "d.png", encode(noise(4, 4, seed=1), "PNG"))
    (src / "dog").symlink_to(elsewhere)
    inside = scan_tree(src)
    assert inside.classes == ["cat", "dog", "emu"] and inside.labels.tolist() == [0, 2]
    assert {f.kind for f in inside.findings} >= {"symlink-outside", "empty-class"}
    followed = scan_tree(src, symlinks="follow")
    assert followed.paths == ["cat/c.png", "dog/d.png", "emu/e.png"]
    assert followed.labels.tolist() == [0, 1, 2]


def test_all_links_left_out_says_how_to_pack_them(tmp_path: Path) -> None:
    src, pool = tmp_path / "src", tmp_path / "pool"
    write(pool / "1.png", encode(noise(4, 4), "PNG"))
    (src / "c").mkdir(parents=True)
    (src / "c" / "1.png").symlink_to(pool / "1.png")
    with pytest.raises(SourceError, match="--symlinks follow"):
        convert(src, tmp_path / "p", "tar")


# -- 3: ImageFolder's samples, --extensions -----------------------------------------------------


def test_default_samples_are_imagefolders(tmp_path: Path) -> None:
    src = real_tree(tmp_path / "src")
    write(src / "photos" / "one.gif", VALID["gif"][1]())  # not in ImageFolder's list
    scan = scan_tree(src)
    classes, expected = imagefolder_order(src)
    assert scan.classes == classes
    assert list(zip(scan.paths, scan.labels.tolist(), strict=True)) == expected
    assert not any(p.endswith(".gif") for p in scan.paths)


def test_extensions_widen_narrow_and_take_everything(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "c" / "a.png", encode(noise(4, 4), "PNG"))
    write(src / "c" / "b.gif", VALID["gif"][1]())
    write(src / "c" / "clip.wav", b"RIFF\x00\x00\x00\x00WAVEfmt ")
    write(src / "c" / "x.npy", b"\x93NUMPY")
    write(src / "c" / "README", b"no extension")
    assert scan_tree(src).paths == ["c/a.png"]
    assert scan_tree(src, extensions=parse_extensions("+gif")).paths == ["c/a.png", "c/b.gif"]
    assert scan_tree(src, extensions=parse_extensions("-png,+gif")).paths == ["c/b.gif"]
    assert scan_tree(src, extensions=parse_extensions("npy,wav")).paths == [
        "c/clip.wav",
        "c/x.npy",
    ]
    everything = scan_tree(src, extensions=parse_extensions("*")).paths
    assert everything == ["c/README", "c/a.png", "c/b.gif", "c/clip.wav", "c/x.npy"]
    # non-image files are packed as bytes (not validated as images) and come back unchanged
    convert(src, tmp_path / "p", "tar", extensions="*")
    extract(tmp_path / "p", tmp_path / "out")
    assert tree_digest(tmp_path / "out") == tree_digest(src)
    with pytest.raises(UsageError, match="not both"):
        parse_extensions("png,+gif")


@pytest.mark.torch
def test_pack_dataset_has_imagefolder_attributes(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from packer.pytorch import PackDataset

    src = tmp_path / "src"
    for cls, n in (("ant", 2), ("bee", 3)):
        for i in range(n):
            write(src / cls / f"{i}.png", encode(noise(4, 4, seed=i), "PNG"))
    convert(src, tmp_path / "p", "zip")
    ds = PackDataset(tmp_path / "p")
    assert ds.classes == ["ant", "bee"] and ds.class_to_idx == {"ant": 0, "bee": 1}
    assert ds.targets == [0, 0, 1, 1, 1]
    assert ds.samples[:3] == [("ant/0", 0), ("ant/1", 0), ("bee/0", 1)] and ds.imgs == ds.samples


# -- 4: names that differ only by extension ---------------------------------------------------


@pytest.mark.parametrize("backend", sorted(BUILTIN_BACKENDS))
def test_names_differing_only_by_extension_round_trip(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    files = {
        "c/star.png": encode(noise(5, 5, seed=1), "PNG"),
        "c/star.jpg": encode(noise(5, 5, seed=2), "JPEG"),
        "c/a.png.png": encode(noise(5, 5, seed=3), "PNG"),  # a stem already ending in .png
        "c/b.png": encode(noise(5, 5, seed=4), "PNG"),
        "c/b.png.jpg": encode(noise(5, 5, seed=5), "JPEG"),  # its stem is b.png's file name
    }
    for rel, data in files.items():
        write(src / rel, data)
    convert(src, tmp_path / "p", backend)
    pack = open_pack(tmp_path / "p")
    keys = list(pack.keys())
    assert len(set(keys)) == len(files) == len(keys)
    assert {"c/star.png", "c/star.jpg", "c/a.png.png", "c/b"} <= set(keys)
    assert pack.get("c/star.jpg").data == files["c/star.jpg"]
    extract(tmp_path / "p", tmp_path / "out")
    assert tree_digest(tmp_path / "out") == tree_digest(src)


# -- 8: one pixel limit ------------------------------------------------------------------------


def test_convert_and_verify_quote_the_same_limit(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "c" / "big.png", encode(noise(20, 20), "PNG"))  # 400 pixels
    with pytest.raises(SourceError, match="400 pixels is over the 100 pixel limit"):
        convert(src, tmp_path / "small", "tar", max_pixels=100)
    with pytest.raises(SourceError, match="400 pixels is over the 100 pixel limit"):
        convert(src, tmp_path / "full", "tar", max_pixels=100, validate="full")


def test_verify_deep_limit_recorded_and_overridable(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "c" / "big.png", encode(noise(20, 20), "PNG"))  # 400 pixels
    convert(src, tmp_path / "p", "tar", max_pixels=1000)
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["created_by"]["max_pixels"] == 1000
    assert verify_pack(tmp_path / "p", deep=True).ok
    strict = verify_pack(tmp_path / "p", deep=True, max_pixels=100)
    assert not strict.ok and "400 pixels is over the 100 pixel limit" in strict.problems[0].message


# -- 9, 10: transforms that damaged data ------------------------------------------------------


def test_sixteen_bit_and_float_are_scaled_not_clipped(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "c" / "a16.tif", tiff16())  # values 0..63000
    write(src / "c" / "f.tif", tiff_float([0.0, 0.25, 0.5, 1.0]))
    convert(
        src,
        tmp_path / "p",
        "memmap",
        transform=Transform.build(size="8x8", mode="L"),
    )
    pack = open_pack(tmp_path / "p")
    a16 = pack.array(0).ravel()
    expected = np.rint(np.arange(64) * 1000 * 255 / 65535)
    assert abs(a16.astype(int) - expected).max() <= 1  # resize to the same size: identity
    assert len(np.unique(a16)) > 50  # before: everything over 255 became 255
    f = pack.array(1)
    assert f.min() == 0 and f.max() == 255


def test_float_without_a_scale_is_refused_with_a_reason(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "c" / "f.tif", tiff_float([-3.0, 7.5]))
    with pytest.raises(SourceError, match="no obvious 8-bit scale"):
        convert(src, tmp_path / "p", "memmap", transform=Transform.build(size="1x2", mode="L"))


def test_webp_greyscale_is_refused() -> None:
    with pytest.raises(UsageError, match="WebP has no greyscale"):
        Transform.build(mode="L", reencode="webp:80")


# -- 11, 12, 13: tell the user everything -----------------------------------------------------


def test_ignored_files_and_warnings_are_reported_everywhere(tmp_path: Path) -> None:
    src = real_tree(tmp_path / "src")
    copied = encode(noise(7, 7, seed=11), "PNG")
    write(src / "photos" / "dup.png", copied)
    write(src / "scans" / "orig.png", copied)
    write(src / "photos" / "fake.jpg", encode(noise(6, 6), "PNG"))  # PNG content, .jpg name
    (src / "empty").mkdir()
    (src / "Photos").mkdir()
    write(src / "Photos" / "x.png", encode(noise(3, 3, seed=9), "PNG"))
    report = convert(src, tmp_path / "p", "tar")
    reasons = report.ignored.by_reason
    assert reasons["at the root (no class)"] == 2
    assert reasons["extension .txt"] == 1 and reasons["extension .gif"] >= 1
    assert reasons["hidden or OS junk"] >= 3
    summary = report.ignored.summary()
    assert summary.startswith(f"ignored {report.ignored.count} file(s): ")
    kinds = {w.kind: w for w in report.warnings}
    assert set(kinds) >= {
        "files-at-root",
        "empty-class",
        "classes-differ-by-case",
        "same-bytes-two-classes",
        "extension-mismatch",
    }
    same = kinds["same-bytes-two-classes"]
    assert same.path == "scans/orig.png" and "photos/dup.png" in same.message
    assert kinds["extension-mismatch"].path == "photos/fake.jpg"
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["source"]["ignored_files"] == report.ignored.count
    assert {"path": "scans/README.txt", "reason": "extension .txt"} in manifest["ignored"]
    assert {w["kind"] for w in manifest["warnings"]} == set(kinds)
    doc = report.to_dict()
    assert doc["ignored"]["count"] == report.ignored.count and len(doc["warnings"]) == len(
        report.warnings
    )


def test_dry_run_reports_every_bad_file_and_writes_nothing(tmp_path: Path) -> None:
    src = real_tree(tmp_path / "src")
    write(src / "photos" / "cut.jpg", VALID["jpeg"][1]()[:-300])
    write(src / "scans" / "empty.png", b"")
    before = sorted(tmp_path.iterdir())
    report = convert(src, tmp_path / "p", "tar", dry_run=True)  # on_error fail: still all listed
    assert report.dry_run and sorted(tmp_path.iterdir()) == before
    assert [s.path for s in report.skipped] == ["photos/cut.jpg", "scans/empty.png"]
    assert report.num_samples == len(scan_tree(src)) - 2
    write(src / "photos" / "dup.png", VALID["png"][1]())
    write(src / "scans" / "dup.png", VALID["png"][1]())
    report = convert(src, tmp_path / "p", "tar", dry_run=True)
    assert [w.path for w in report.warnings if w.kind == "same-bytes-two-classes"] == [
        "scans/dup.png"
    ]


# -- 14, 15: decoder noise, errors that name the sample ---------------------------------------


def apng_with_invalid_actl() -> bytes:
    """A PNG with an acTL chunk claiming 0 frames: Pillow warns, then decodes it as a plain PNG."""
    png = encode(noise(6, 6), "PNG")
    idat = png.find(b"IDAT") - 4
    return png[:idat] + png_chunk(b"acTL", struct.pack(">II", 0, 0)) + png[idat:]


def test_verify_deep_keeps_decoder_noise_off_the_terminal(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(3):
        write(src / "c" / f"apng{i}.png", apng_with_invalid_actl())
    convert(src, tmp_path / "p", "tar")
    report = verify_pack(tmp_path / "p", deep=True)  # pytest turns a leaked warning into an error
    assert report.ok
    assert [(w.where, w.message) for w in report.decoder_warnings] == [
        (f"sample {i} (c/apng{i})", "Invalid APNG, will use default PNG image if possible")
        for i in range(3)
    ]
    result = subprocess.run(
        [Path(sys.executable).parent / "pack", "verify", tmp_path / "p", "--deep", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.torch
def test_decode_errors_name_the_sample_and_pack(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from packer.errors import SampleDecodeError
    from packer.pytorch import PackDataset

    src = tmp_path / "src"
    write(src / "c" / "good.png", encode(noise(4, 4), "PNG"))
    write(src / "c" / "junk.png", b"\x89PNG\r\n\x1a\nnot really")
    convert(src, tmp_path / "p", "zip", validate="none")
    ds = PackDataset(tmp_path / "p")
    with pytest.raises(SampleDecodeError) as info:
        ds[1]
    message = str(info.value)
    assert str(tmp_path / "p") in message and "c/junk" in message and "BytesIO" not in message


# -- 16: verify --deep on several cores -------------------------------------------------------


def test_verify_workers_give_the_same_report(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(9):
        write(src / "c" / f"{i}.png", encode(noise(4, 4, seed=i), "PNG"))
    convert(src, tmp_path / "p", "tar")
    data = next((tmp_path / "p").glob("shard-*.tar"))
    raw = bytearray(data.read_bytes())
    pack = open_pack(tmp_path / "p")
    for i in (1, 6):  # two samples in different blocks: the report keeps sample order
        raw[int(pack.index.locations[i, 1]) + 40] ^= 0xFF
    data.write_bytes(bytes(raw))
    from packer.check.local import verify_local

    one = verify_local(tmp_path / "p", deep=True, block=2)  # several blocks on a small pack
    two = verify_local(tmp_path / "p", deep=True, workers=2, block=2)
    findings = [{k: v for k, v in r.to_dict().items() if k != "seconds"} for r in (one, two)]
    assert findings[0] == findings[1]  # everything but the time it took
    assert [p.where for p in one.problems if p.kind == "sample"] == [
        "sample 1 (c/1)",
        "sample 6 (c/6)",
    ]


# -- acceptance: a real tree, every format, verify, extract, diff -----------------------------


@pytest.mark.parametrize("backend", sorted(BUILTIN_BACKENDS))
def test_real_tree_round_trips_in_every_format(tmp_path: Path, backend: str) -> None:
    src = real_tree(tmp_path / "src")
    report = convert(src, tmp_path / "p", backend)
    assert not report.skipped  # nothing valid rejected
    pack = open_pack(tmp_path / "p")
    classes, expected = imagefolder_order(src)
    assert pack.classes == classes and pack.labels.tolist() == [label for _, label in expected]
    assert verify_pack(tmp_path / "p", deep=True).ok
    extract(tmp_path / "p", tmp_path / "out")
    packed = {p for p, _ in expected}
    assert tree_digest(tmp_path / "out") == {
        k: v for k, v in tree_digest(src).items() if k in packed
    }
