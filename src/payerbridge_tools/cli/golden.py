"""``payerbridge golden``: the golden request suite's scenarios (tests/golden), run and
compared with their expected outputs, or recorded again on purpose."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

golden_app = typer.Typer(no_args_is_help=True, help="The golden request suite (tests/golden).")
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True)

Names = Annotated[
    list[str] | None, typer.Argument(help="Scenarios (directory names); all if none.")
]
Root = Annotated[Path | None, typer.Option("--dir", help="The scenarios' directory.")]


@golden_app.command("check")
def golden_check(names: Names = None, root: Root = None) -> None:
    """Run the scenarios and show how each output differs from the expected one."""
    _run(names, root, record=False)


@golden_app.command("record")
def golden_record(names: Names = None, root: Root = None) -> None:
    """Run the scenarios and keep their outputs as the expected ones, showing the diff
    of each change: a deliberate re-recording after a change to a mapping, an adapter,
    the profiles or the identity engine."""
    _run(names, root, record=True)


def _run(names: list[str] | None, root: Path | None, *, record: bool) -> None:
    from payerbridge_tools.golden import GOLDEN_DIR, diff, run, scenarios

    found = scenarios(root or GOLDEN_DIR, names)
    if not found:
        err.print("[red]no scenario found[/red]")
        raise typer.Exit(2)
    failed = 0
    for scenario in found:
        actual = run(scenario)
        expected = (
            orjson.loads(scenario.expected.read_bytes()) if scenario.expected.is_file() else None
        )
        changes = diff(expected, actual)
        for line in changes[:400]:
            out.print(line, markup=False)
        if record:
            scenario.expected.write_bytes(
                orjson.dumps(actual, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
            )
            err.print(f"[cyan]recorded[/cyan] {scenario.name}" + (" (changed)" if changes else ""))
        elif changes:
            failed += 1
            err.print(f"[red]differs[/red] {scenario.name}")
        else:
            err.print(f"[green]same[/green] {scenario.name}")
    if failed:
        raise typer.Exit(1)
