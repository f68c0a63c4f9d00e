"""Progress on stderr: one 80-column bar on a terminal, a line every few seconds in a log."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from packer.cli import render as cli_render
from packer.cli.render import CliProgress, throughput


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=80, force_terminal=terminal, record=True), buffer


def test_the_bar_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    wide, _ = _console(terminal=True)
    wide.width = 200  # drawn where nothing is cut, then measured
    monkeypatch.setattr(cli_render, "err", wide)
    progress = CliProgress(quiet=False)
    assert progress.live
    progress.start(1_234_567, "a-very-long-source-folder-name -> parquet")
    progress.advance(400_000, 123_456_789)
    progress.finish()  # draws the last frame (then clears it: the bar is transient)
    drawn = wide.export_text()
    assert drawn.count("a-very-long-source-") >= 2  # the first frame and the last
    bar = drawn[drawn.rindex("a-very-long-source-") :].splitlines()[0].rstrip()
    assert len(bar) <= 80, bar
    assert "400k/1.23M samples" in bar and re.search(r"\S+/s \S+ [kMG]?B/s ETA", bar)


def test_a_log_gets_a_line_every_few_seconds_never_one_per_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console, buffer = _console(terminal=False)
    monkeypatch.setattr(cli_render, "err", console)
    progress = CliProgress(quiet=False)
    assert not progress.live
    progress.start(10_000, "verify x.pack")
    for _ in range(10_000):
        progress.advance(1, 100)
    assert buffer.getvalue() == ""  # a fast run: no line at all
    progress.EVERY = 0.0  # as if seconds had passed between calls
    progress.advance(1, 100)
    line = buffer.getvalue().strip()
    assert re.match(r"verify x\.pack: 10001/10000 samples \(100%\), \S+ samples/s, .* ETA ", line)
    progress.finish()


def test_rates_never_show_zero_while_bytes_move_and_units_are_the_work() -> None:
    progress = CliProgress(quiet=True)
    progress.start(96, "bench tree", unit="measurements")
    progress._started -= 10.0  # ten seconds ago
    progress.advance(24, 50)  # 5 bytes per second
    rate = progress.rate()
    assert "measurements/s" in rate and "samples" not in rate
    assert re.search(r"[1-9][\d.]* (bytes|B)/s", rate), rate  # not "0.0 MB/s"
    assert throughput(2.0, 57_000, "samples", 110_000_000) == "2.00 s (28.5k samples/s, 55.0 MB/s)"
