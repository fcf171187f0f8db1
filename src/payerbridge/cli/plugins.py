"""Commands the CLI takes from outside the product: entry points of ``payerbridge.commands``.

The benchmarks, the sandbox and the demo that ``make run`` starts live in the
``payerbridge_tools`` package, which the product never imports; it names its commands as
entry points of this group instead (see pyproject.toml). Each entry point is a Typer app (a
group of commands) or a function (one command), added under the entry point's name. One that
does not load (the ``bench`` extra is not installed) is still listed, and says how to get it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import metadata

import typer
from rich.markup import escape

from payerbridge.cli.console import err

__all__ = ["GROUP", "add_plugin_commands"]

GROUP = "payerbridge.commands"
_INSTALL = "pip install 'payerbridge[bench]'"


def add_plugin_commands(
    app: typer.Typer, entry_points: Iterable[metadata.EntryPoint] | None = None
) -> None:
    """Add each command of ``entry_points`` (by default, the installed ones of ``GROUP``)."""
    found = metadata.entry_points(group=GROUP) if entry_points is None else entry_points
    for entry_point in sorted(found, key=lambda ep: ep.name):
        try:
            command = entry_point.load()
        except ImportError as exc:
            _add_unavailable(app, entry_point.name, exc)
            continue
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=entry_point.name)
        else:
            app.command(entry_point.name)(command)


def _add_unavailable(app: typer.Typer, name: str, problem: ImportError) -> None:
    """``name`` as a command that takes any arguments (``--help`` too) and says what is
    missing (exit 1)."""
    app.command(
        name,
        help=escape(f"Not installed here: {_INSTALL}"),
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(_unavailable(name, problem))


def _unavailable(name: str, problem: ImportError) -> Callable[[], None]:
    def command() -> None:
        err.print(
            f"[red]error:[/red] `payerbridge {name}` is not available: {escape(str(problem))}"
        )
        if _INSTALL not in str(problem):
            err.print(escape(f"it comes with the bench extra: {_INSTALL}"))
        raise typer.Exit(1)

    return command
