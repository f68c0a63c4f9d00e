"""The `pack` command: exit codes, one-line errors, --json documents, nothing half-written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from packer import errors
from packer.cli.main import app
from packer.format.staging import partial_path

runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_help_lists_every_command() -> None:
    code, out, _ = run("--help")
    assert code == 0
    assert set(COMMANDS) >= {"convert", "plan", "merge", "inspect", "verify", "extract", "bench"}
    for command in COMMANDS:
        assert command in out
    assert "<bool>" not in out and "--install-completion" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help_with_an_example_and_flags_as_flags(command: str) -> None:
    code, out, _ = run(command, "--help")
    assert code == 0
    assert "Example: pack" in out
    assert "<bool>" not in out  # a flag takes no value: `--json`, never `--json true`
    assert "--no-force" not in out and "--no-json" not in out


def test_convert_inspect_verify_json(demo_tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "demo.pack"
    code, out, _ = run(
        "convert", demo_tree, dst, "--format", "tar", "--samples-per-shard", "10", "--cut", "fixed",
        "--json",
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["num_samples"] == 48 and report["data_files"] == 5 and report["skipped"] == []
    code, out, _ = run("inspect", dst, "--json")
    info = json.loads(out)
    assert code == 0 and info["backend"] == "tar" and info["num_samples"] == 48
    assert [c["count"] for c in info["classes"]] == [12, 12, 12, 12]
    code, out, _ = run("verify", dst, "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    code, out, _ = run("inspect", dst)
    assert code == 0 and "circle" in out and "shard-00004.tar" in out


def test_convert_plain_output_is_one_summary_line(demo_tree: Path, tmp_path: Path) -> None:
    code, out, _ = run("convert", demo_tree, tmp_path / "p", "-f", "zip", "-q")
    assert code == 0
    assert out.count("\n") == 1 and out.startswith("packed 48 samples (4 classes)")


def test_existing_destination_needs_force(demo_tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "p"
    assert run("convert", demo_tree, dst, "-q")[0] == 0
    before = (dst / "manifest.json").read_bytes()
    code, _, err = run("convert", demo_tree, dst, "-q", "-f", "zip")
    assert code == errors.EXIT_OUTPUT
    assert "--force" in err and str(dst) in err and err.count("\n") == 1
    assert (dst / "manifest.json").read_bytes() == before
    assert run("convert", demo_tree, dst, "-q", "-f", "zip", "--force")[0] == 0
    assert json.loads((dst / "manifest.json").read_text())["backend"]["name"] == "zip"
    assert not partial_path(dst).exists()


def test_force_never_replaces_a_folder_that_is_not_a_pack(demo_tree: Path, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    code, _, err = run("convert", demo_tree, precious, "--force", "-q")
    assert code == errors.EXIT_OUTPUT and "not a pack" in err
    assert (precious / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("convert", "{missing}", "{dst}"), errors.EXIT_SOURCE, "no such folder"),
        (("convert", "{tree}", "{dst}", "-f", "nope"), errors.EXIT_USAGE, "unknown format 'nope'"),
        (
            ("convert", "{tree}", "{dst}", "-o", "bogus=1"),
            errors.EXIT_USAGE,
            "unknown option 'bogus'",
        ),
        (("convert", "{tree}", "{dst}", "-o", "novalue"), errors.EXIT_USAGE, "key=value"),
        (("convert", "{tree}", "{dst}", "--shard-size", "lots"), errors.EXIT_USAGE, "512MB"),
        (("convert", "{tree}", "{dst}", "--on-error", "maybe"), errors.EXIT_USAGE, "--on-error"),
        (("convert", "{tree}", "{tree}/inside"), errors.EXIT_USAGE, "outside the source"),
        (("convert", "{empty}", "{dst}"), errors.EXIT_SOURCE, "no samples found"),
        (("inspect", "{missing}"), errors.EXIT_BAD_PACK, "not a pack"),
        (("verify", "{missing}"), errors.EXIT_BAD_PACK, "not a pack"),
    ],
)
def test_user_errors_are_one_line_with_an_exit_code(
    demo_tree: Path, tmp_path: Path, args: tuple[str, ...], code: int, needle: str
) -> None:
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    values = {
        "missing": tmp_path / "missing",
        "dst": tmp_path / "dst",
        "tree": demo_tree,
        "empty": tmp_path / "empty",
    }
    got, out, err = run(*(a.format(**values) for a in args))
    assert got == code, err
    assert needle in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert out == ""
    assert not (tmp_path / "dst").exists() and not partial_path(tmp_path / "dst").exists()


def test_verify_exit_code_1_names_the_damaged_sample(demo_tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "p"
    run("convert", demo_tree, dst, "-q", "-f", "zip")
    from packer import open_pack

    with open_pack(dst) as p:
        _, offset, length = (int(v) for v in p.index.locations[5])
        key = p.key(5)
    shard = dst / "shard-00000.zip"
    blob = bytearray(shard.read_bytes())
    blob[offset + length // 2] ^= 1
    shard.write_bytes(bytes(blob))
    code, out, _ = run("verify", dst)
    assert code == errors.EXIT_PROBLEMS_FOUND
    assert key in out and "DAMAGED" in out
    code, out, _ = run("verify", dst, "--json")
    assert code == 1 and json.loads(out)["ok"] is False


def test_inspect_on_damaged_manifest_is_a_clear_error(demo_tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "p"
    run("convert", demo_tree, dst, "-q")
    (dst / "manifest.json").write_text("{not json")
    code, _, err = run("inspect", dst)
    assert code == errors.EXIT_BAD_PACK and "not valid JSON" in err
    code, out, _ = run("verify", dst)
    assert code == errors.EXIT_PROBLEMS_FOUND and "manifest" in out


def test_formats_json_lists_builtins_and_plugins() -> None:
    code, out, _ = run("formats", "--json")
    found = {f["name"]: f for f in json.loads(out)}
    assert code == 0
    assert found["tar"]["origin"] == "built-in"
    assert found["tar"]["options"] == {"labels": "member", "loader_indexes": True}
    assert found["dummy"]["origin"] == "packer-dummy"


def test_skip_reports_each_bad_file(demo_tree: Path, tmp_path: Path) -> None:
    import shutil

    tree = tmp_path / "tree"
    shutil.copytree(demo_tree, tree)
    (tree / "circle" / "zero.jpg").write_bytes(b"")
    code, out, err = run("convert", tree, tmp_path / "p", "--on-error", "skip", "--json")
    assert code == 0
    assert json.loads(out)["skipped"] == [
        {"path": "circle/zero.jpg", "reason": "empty file (0 bytes)"}
    ]
    assert "circle/zero.jpg" in err
    code, _, err = run("convert", tree, tmp_path / "q")
    assert code == errors.EXIT_SOURCE and "zero.jpg" in err and "--on-error skip" in err


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out.startswith("packer ")


def test_transform_options(demo_tree: Path, tmp_path: Path) -> None:
    code, _, err = run(
        "convert", demo_tree, tmp_path / "a", "-f", "tar", "--size", "16", "--mode", "L"
    )
    assert code == errors.EXIT_USAGE and "--reencode" in err
    assert not (tmp_path / "a").exists()
    code, _, err = run("convert", demo_tree, tmp_path / "b", "-f", "memmap", "--size", "16")
    assert code == errors.EXIT_USAGE and "--mode" in err
    code, out, _ = run(
        "convert",
        demo_tree,
        tmp_path / "c",
        "-f",
        "memmap",
        "--size",
        "16x8",
        "--mode",
        "L",
        "--json",
    )
    assert code == 0 and json.loads(out)["payload_bytes"] == 48 * 16 * 8
    code, out, _ = run("inspect", tmp_path / "c", "--json")
    info = json.loads(out)
    assert info["sample_shape"] == [16, 8, 1] and info["transform"]["resize"] == "stretch"
    code, out, _ = run("inspect", tmp_path / "c")
    # in words, never a Python repr
    assert "transform: resized to 16x8 (stretch), converted to L, stored as 16x8x1 pixels" in out
    assert "None" not in out and "{'" not in out and "[16" not in out
    run("convert", demo_tree, tmp_path / "t", "-f", "tar", "-q")
    assert "format tar (labels=member, loader_indexes=true)" in run("inspect", tmp_path / "t")[1]
    code, out, _ = run(
        "convert",
        demo_tree,
        tmp_path / "d",
        "-f",
        "zip",
        "--size",
        "16",
        "--reencode",
        "webp:80",
        "--json",
    )
    assert code == 0
    from packer import open_pack

    with open_pack(tmp_path / "d") as p:
        assert p[0].ext == "webp" and p[0].data[8:12] == b"WEBP"


def test_compact_numbers_in_tables() -> None:
    from packer.cli.render import compact_number

    assert [compact_number(v) for v in (986_000, 12_500, 9_999, 1_280_000, 3.14159, 250.4)] == [
        "986k",
        "12.5k",
        "9999",
        "1.28M",
        "3.14",
        "250",
    ]


def test_dry_run_lists_every_bad_file_writes_nothing_and_exits_3(tmp_path: Path) -> None:
    from PIL import Image

    src = tmp_path / "src"
    (src / "c").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(src / "c" / "good.png")
    (src / "c" / "cut.png").write_bytes((src / "c" / "good.png").read_bytes()[:30])
    (src / "c" / "empty.jpg").write_bytes(b"")
    (src / "c" / "notes.txt").write_text("x")
    code, out, err = run("convert", src, tmp_path / "p", "--dry-run")
    assert code == errors.EXIT_SOURCE
    assert "bad c/cut.png: truncated PNG" in err and "bad c/empty.jpg: empty file" in err
    assert "ignored 1 file(s): 1 extension .txt" in err
    assert "dry run: 1 samples" in out and "nothing was written" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    code, out, _ = run("convert", src, tmp_path / "p", "--dry-run", "--on-error", "skip", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["dry_run"] is True and len(doc["skipped"]) == 2
    assert doc["ignored"]["by_reason"] == {"extension .txt": 1}


def test_extensions_and_symlinks_flags(tmp_path: Path) -> None:
    from PIL import Image

    src = tmp_path / "src"
    (src / "c").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(src / "c" / "a.gif")
    Image.new("RGB", (4, 4)).save(tmp_path / "out.png")
    (src / "c" / "link.png").symlink_to(tmp_path / "out.png")
    code, out, err = run("convert", src, tmp_path / "p", "--extensions", "+gif", "--json")
    assert code == 0 and json.loads(out)["num_samples"] == 1
    assert "warning: c/link.png: left out symlinked file that leaves SRC" in err
    code, out, _ = run(
        "convert", src, tmp_path / "q", "--extensions", "+gif", "--symlinks", "follow", "--json"
    )
    assert code == 0 and json.loads(out)["num_samples"] == 2
    code, _, err = run("convert", src, tmp_path / "r", "--symlinks", "maybe")
    assert code == errors.EXIT_USAGE and "--symlinks" in err


def test_cli_default_format_is_the_registry_default() -> None:
    from packer.backends.registry import DEFAULT_FORMAT as REGISTRY_DEFAULT
    from packer.cli.options import DEFAULT_FORMAT

    assert DEFAULT_FORMAT == REGISTRY_DEFAULT


# Every command through its error paths: (args, exit code, words of the one-line error).
# {tree} a class tree, {pack} a tar pack of it, {pixels} a pixel pack, {plan} a plan of it,
# {notpack} a plain folder, {linked} a folder whose class folder links outside it.
ERROR_WALK = [
    (("plan", "{missing}", "{new}"), errors.EXIT_SOURCE, "no such folder"),
    (("plan", "{tree}", "{plan}"), errors.EXIT_OUTPUT, "--force"),
    (("plan", "{tree}", "{new}", "-o", "bogus=1"), errors.EXIT_USAGE, "unknown option 'bogus'"),
    (("convert", "--plan", "{plan}", "{new}"), errors.EXIT_USAGE, "--part I/N"),
    (("convert", "--plan", "{plan}", "--part", "5/2", "{new}"), errors.EXIT_USAGE, "0 <= I < N"),
    (("convert", "--plan", "{notpack}", "--part", "0/1", "{new}"), errors.EXIT_BAD_PACK, "not a plan"),
    (("convert", "{tree}", "{pack}"), errors.EXIT_OUTPUT, "already exists"),
    (("merge", "{notpack}", "{tree}", "{new}"), errors.EXIT_BAD_PACK, "not a plan"),
    (("merge", "{plan}", "{notpack}", "{new}"), errors.EXIT_USAGE, "not a finished part"),
    (("inspect", "{notpack}"), errors.EXIT_BAD_PACK, "not a pack (manifest.json is missing)"),
    (("inspect", "{pack}", "--preview", "{new}.png", "--per-class", "0"), errors.EXIT_USAGE, "--per-class"),
    (("inspect", "{pack}", "--preview", "{new}.png", "--classes", "zebra"), errors.EXIT_USAGE, "no class 'zebra'"),
    (("verify", "{notpack}"), errors.EXIT_BAD_PACK, "not a pack (manifest.json is missing)"),
    (("verify", "{missing}"), errors.EXIT_BAD_PACK, "not a pack (no such folder)"),
    (("extract", "{notpack}", "{new}"), errors.EXIT_BAD_PACK, "not a pack"),
    (("extract", "{pixels}", "{new}"), errors.EXIT_BAD_PACK, "decoded pixels"),
    (("extract", "{pack}", "{linked}"), errors.EXIT_OUTPUT, "symlink in the output folder"),
    (("extract", "{pack}", "{new}", "--classes", "zebra"), errors.EXIT_USAGE, "no class 'zebra'"),
    (("extract", "{pack}", "{new}", "--keys-from", "{missing}"), errors.EXIT_USAGE, "cannot read the key list"),
    (("bench", "{missing}"), errors.EXIT_SOURCE, "no such folder"),
    (("bench", "{tree}", "--sort", "nope"), errors.EXIT_USAGE, "--sort 'nope'"),
    (("bench", "{tree}", "--formats", "nope"), errors.EXIT_USAGE, "unknown format 'nope'"),
]  # fmt: skip


@pytest.fixture(scope="module")
def walk_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from packer.api import save_plan
    from packer.demo import make_demo_tree
    from packer.images.transforms import Transform

    root = tmp_path_factory.mktemp("walk")
    tree = make_demo_tree(root / "tree", per_class=3, size=16)
    from packer import convert

    convert(tree, root / "pack", "tar")
    convert(tree, root / "pixels", "memmap", transform=Transform(size=(8, 8), mode="RGB"))
    save_plan(tree, root / "plan", "tar")
    (root / "notpack").mkdir()
    (root / "linked").mkdir()
    (root / "linked" / "circle").symlink_to(root / "notpack")
    return {"tree": tree, **{n: root / n for n in ("pack", "pixels", "plan", "notpack", "linked")}}


@pytest.mark.parametrize(("args", "code", "needle"), ERROR_WALK)
def test_every_command_error_is_one_line_with_its_documented_code(
    walk_inputs: dict[str, Path], tmp_path: Path, args: tuple[str, ...], code: int, needle: str
) -> None:
    values = {**walk_inputs, "missing": tmp_path / "missing", "new": tmp_path / "new"}
    got, out, err = run(*(a.format(**values) for a in args))
    assert got == code, err
    assert needle in err
    assert err.strip().count("\n") == 0 and err.startswith("error: ") and "Traceback" not in err
    assert out == ""
    assert not (tmp_path / "new").exists() and not (tmp_path / "new.png").exists()
    assert list((walk_inputs["notpack"]).iterdir()) == []  # nothing written through the link


def test_a_missing_extra_is_reported_before_any_work(
    walk_inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ModuleNotFoundError
    keep = tmp_path / "kept"
    code, _, err = run("bench", walk_inputs["tree"], "--plot", tmp_path / "b.png", "--keep", keep)
    assert code == errors.EXIT_USAGE
    assert err.strip() == "error: --plot needs matplotlib: pip install 'packer[plot]'"
    assert not keep.exists()  # nothing was converted or measured first


def test_a_broken_extra_is_reported_before_any_work(
    walk_inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install whose spec is found but whose import fails (a missing shared library)."""
    fake = tmp_path / "site" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        'raise ImportError("libfreetype.so.6: cannot open shared object file")\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    keep = tmp_path / "kept"
    code, _, err = run("bench", walk_inputs["tree"], "--plot", tmp_path / "b.png", "--keep", keep)
    assert code == errors.EXIT_USAGE
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: --plot needs matplotlib, which is installed but does not import")
    assert "libfreetype.so.6" in err and "pip install --force-reinstall 'packer[plot]'" in err
    assert not keep.exists()


def test_shell_completion_completes_commands_and_options() -> None:
    import os
    import subprocess
    import sys

    pack = Path(sys.executable).parent / "pack"  # the installed command, as a shell runs it

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_PACK_COMPLETE": "complete_bash", "COMP_WORDS": words}
        env["COMP_CWORD"] = str(len(words.split()) - 1)
        done = subprocess.run([pack], env=env, capture_output=True, text=True, check=False)
        return done.stdout.split()

    assert complete("pack ins") == ["inspect"]
    assert "--preview" in complete("pack inspect --pre")
    # the shell is detected from the parent process (sh under CI); typer's switch names it
    fixed = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    script = subprocess.run(
        [pack, "--show-completion", "bash"], env=fixed, capture_output=True, text=True, check=False
    )
    assert script.returncode == 0 and "_pack_completion()" in script.stdout


def test_convert_and_plan_share_the_pack_shaping_options() -> None:
    """Declared once (cli.options.with_pack_options): every ConvertOptions field has its flag on
    both commands, with the same help and default, and a plan made with them matches a convert."""
    import dataclasses

    import typer.main

    from packer.api import ConvertOptions

    group = typer.main.get_command(app)
    params = {
        name: {p.name: p for p in group.commands[name].params}  # type: ignore[attr-defined]
        for name in ("convert", "plan")
    }
    flags = {f.name for f in dataclasses.fields(ConvertOptions)} - {"options", "transform"}
    flags |= {"option", "size", "resize", "mode", "reencode", "draft"}  # -o and the transform
    for name in flags:
        convert, plan = params["convert"][name], params["plan"][name]
        assert (convert.opts, convert.help, convert.default) == (plan.opts, plan.help, plan.default)


def test_a_bad_shaping_option_is_one_line_on_both_commands(tmp_path: Path) -> None:
    (tmp_path / "src" / "a").mkdir(parents=True)
    for command in ("convert", "plan"):
        code, _, err = run(command, tmp_path / "src", tmp_path / "out", "--on-error", "ignore")
        assert code == errors.EXIT_USAGE, (command, err)
        assert err.count("\n") == 1 and "on-error" in err
    assert not (tmp_path / "out").exists()
