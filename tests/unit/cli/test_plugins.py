"""The CLI adds the tools' commands from entry points; one that does not load says how to
install it."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import typer
from typer.testing import CliRunner

from payerbridge.cli.plugins import GROUP, add_plugin_commands

ROOT = Path(__file__).resolve().parents[3]


def _app() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True)

    @app.command()
    def version() -> None:
        """A command of the product's own."""

    return app


def _entry_point(name: str, value: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group=GROUP)


def test_the_installed_tools_add_bench_sandbox_and_demo() -> None:
    app = _app()
    add_plugin_commands(app)

    runner = CliRunner()
    for command in (["bench", "--help"], ["sandbox", "--help"], ["demo", "--help"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
        assert "Not installed" not in result.output


def test_the_entry_points_are_the_ones_pyproject_declares() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = pyproject["project"]["entry-points"][GROUP]
    installed = {ep.name: ep.value for ep in metadata.entry_points(group=GROUP)}
    assert installed == declared  # else: pip install -e . again (make does)


def test_a_command_that_does_not_load_says_how_to_install_it() -> None:
    app = _app()
    add_plugin_commands(app, [_entry_point("bench", "payerbridge_missing_tools.cli:bench_app")])

    runner = CliRunner()
    for args in (["bench"], ["bench", "identity", "--members", "5"], ["bench", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert "`payerbridge bench` is not available" in result.output
        assert "No module named 'payerbridge_missing_tools'" in result.output
        assert "pip install 'payerbridge[bench]'" in result.output
    listed = runner.invoke(app, ["--help"]).output
    assert "bench" in listed and "Not installed here: pip install 'payerbridge[bench]'" in listed


def test_a_function_is_one_command_and_a_typer_app_a_group() -> None:
    app = _app()
    add_plugin_commands(
        app,
        [
            _entry_point("demo", "payerbridge_tools.cli.sandbox:demo"),
            _entry_point("sandbox", "payerbridge_tools.cli.sandbox:sandbox_app"),
        ],
    )

    runner = CliRunner()
    assert "--base-port" in runner.invoke(app, ["demo", "--help"]).output
    assert "generate" in runner.invoke(app, ["sandbox", "--help"]).output
