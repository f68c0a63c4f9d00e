"""`pack bench` smoke test: every format on a tiny tree, JSON schema, ratios, plot. No timing asserts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from packer._util.pagecache import resident_fraction
from packer.backends.registry import BUILTIN_BACKENDS, backend_names
from packer.bench.report import METRICS
from packer.cli.main import app
from packer.read.describe import inspect_pack


def test_bench_every_format_json_and_plot(demo_tree: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("torch")
    json_path, png_path, keep = tmp_path / "b.json", tmp_path / "b.png", tmp_path / "packs"
    result = CliRunner().invoke(
        app,
        ["bench", str(demo_tree), "--formats", "all", "--repeat", "2", "--random", "200", "--decode",
         "--workers", "0", "--json", str(json_path), "--plot", str(png_path), "--keep", str(keep), "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(json_path.read_text())
    assert doc["schema"] == "packer-bench-v1" and doc["samples"] == 48 and doc["rounds"] == 2
    names = [r["name"] for r in doc["results"]]
    assert sorted(names) == sorted(["folder", *backend_names()])  # built-ins and plugins
    assert set(BUILTIN_BACKENDS) <= set(names)
    for r in doc["results"]:
        for metric, stat in r["metrics"].items():
            assert metric in METRICS
            assert stat["min"] <= stat["median"] <= stat["max"]
        for metric in (
            "seq_samples_per_s",
            "random_samples_per_s",
            "decode_images_per_s",
            "open_ms",
        ):
            assert r["metrics"][metric]["median"] > 0
        if r["name"] == "folder":
            assert all(v == pytest.approx(1.0) for v in r["vs_folder"].values())
            assert "convert_seconds" not in r["metrics"]
        else:
            assert r["metrics"]["convert_seconds"]["median"] > 0
            assert r["vs_folder"]["random_samples_per_s"] > 0
    assert doc["recommendation"]["random"] in backend_names()
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (keep / "tar.pack" / "manifest.json").is_file()
    # decode was measured: it decides the recommendation, and the line says why
    formats = [r for r in doc["results"] if r["name"] != "folder"]
    fastest = max(formats, key=lambda r: r["metrics"]["decode_images_per_s"]["median"])["name"]
    assert doc["recommendation"]["decode"] == fastest
    assert f"recommended: {fastest}, which a DataLoader with 0 worker(s) decoded fastest" in (
        " ".join(result.stdout.split())
    )
    # the same size figure as `pack inspect` for the same pack and source
    tar = next(r for r in doc["results"] if r["name"] == "tar")
    inspected = inspect_pack(keep / "tar.pack")["size_vs_source"]
    assert tar["metrics"]["size_ratio"]["median"] == pytest.approx(inspected, abs=1e-4)


def test_bench_sample_and_existing_pack_and_cleanup(
    demo_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from packer import convert

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    existing = convert(demo_tree, tmp_path / "mine.pack", "zip").path
    args = [
        "bench",
        str(demo_tree),
        "--formats",
        "memmap",
        "--repeat",
        "1",
        "--random",
        "50",
        "--json",
        "-",
        "-q",
    ]
    result = CliRunner().invoke(app, [*args, "--samples", "20"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["samples"] == 20 and [r["name"] for r in doc["results"]] == ["folder", "memmap"]
    assert doc["recommendation"] == {"random": "memmap", "sequential": "memmap", "decode": None}
    text = CliRunner().invoke(app, [*args[:-3], "-q", "--samples", "20"]).stdout
    assert "recommended: memmap, the fastest random reads" in " ".join(text.split())
    result = CliRunner().invoke(app, [*args, "--pack", str(existing)])
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.stdout)["results"]] == [
        "folder",
        "memmap",
        "zip:mine.pack",
    ]
    result = CliRunner().invoke(app, [*args, "--samples", "20", "--pack", str(existing)])
    assert result.exit_code == 2 and "has 48 samples but the source has 20" in result.stderr
    assert list(scratch.iterdir()) == []  # temporary packs and samples are cleaned up


def test_bench_rejects_unknown_format(demo_tree: Path) -> None:
    result = CliRunner().invoke(app, ["bench", str(demo_tree), "--formats", "nope", "-q"])
    assert result.exit_code == 2 and "unknown format 'nope'" in result.stderr


def test_warm_and_evict_move_a_file_in_and_out_of_the_page_cache(tmp_path: Path) -> None:
    from packer._util.pagecache import evict, warm

    f = tmp_path / "blob"
    f.write_bytes(os.urandom(4 << 20))
    warm(f)
    warm_fraction = resident_fraction(f)
    if warm_fraction is None:
        pytest.skip("mincore is not available here: residency cannot be measured")
    evict(f)
    cold_fraction = resident_fraction(f)
    assert warm_fraction > 0.9, warm_fraction
    assert cold_fraction is not None and cold_fraction < 0.1, cold_fraction
