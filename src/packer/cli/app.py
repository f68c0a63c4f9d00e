"""The ``pack`` application object and what every command shares: error handling, help display.

Commands live in :mod:`packer.cli.main` (writing packs) and :mod:`packer.cli.read` (reading them);
both register on :data:`app` through :func:`command`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from packer.cli.render import err
from packer.errors import EXIT_INTERRUPTED, PackerError, UsageError

P = ParamSpec("P")
R = TypeVar("R")


def _flags_without_type(params: list[Any]) -> list[Any]:
    """typer shows every option's type, so a flag reads ``--json <bool>`` and users try
    ``--json true``: a flag shows no type, and one that is off by default has no ``--no-`` twin
    (``--force``, not ``--force / --no-force``). (typer carries its own click: duck typing.)"""
    for param in params:
        if getattr(param, "is_flag", False):
            if param.metavar is None:
                param.metavar = ""
            if param.default is False:
                param.secondary_opts = []
    return params


class _Command(TyperCommand):
    def get_params(self, ctx: Any) -> Any:
        return _flags_without_type(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx: Any) -> Any:
        return _flags_without_type(super().get_params(ctx))


app = typer.Typer(
    name="pack",
    cls=_Group,
    help="Turn folder trees of many small images into a few large packed files, and read them fast.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


#: set by :func:`packer.cli.main.main`: the process is the ``pack`` program's own to configure
OWN_PROCESS = False


def _handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """User mistakes and damaged input: one line on stderr and a documented exit code, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if OWN_PROCESS:  # the `pack` program (main), not `app` invoked inside someone's process
            from packer import api  # here, not at the top: `pack --help` stays quick

            api.prepare_command_process()
        try:
            return fn(*args, **kwargs)
        except PackerError as exc:
            # escaped: paths and hints hold brackets (`packer[plot]`, `img[1].jpg`)
            err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted; nothing was written")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


def command(name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Register a ``pack`` subcommand with the shared error handling and help display."""

    def register(fn: Callable[P, R]) -> Callable[P, R]:
        wrapped = _handle_errors(fn)
        app.command(name, cls=_Command)(wrapped)
        return wrapped

    return register


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``-o key=value`` pairs -> a dict (the backend checks names and values)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise UsageError(
                f"-o {pair!r} must look like key=value (see `pack formats` for each format's options)"
            )
        options[key.strip()] = value.strip()
    return options
