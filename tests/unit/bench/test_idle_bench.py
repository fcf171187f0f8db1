"""``bench idle``'s figures and report from readings (the processes themselves are run by
the benchmark, not here)."""

from __future__ import annotations

from typer.testing import CliRunner

from payerbridge_tools.bench.idle import IdleRun, Reading, report_markdown, summary_rows
from payerbridge_tools.bench.online_ab import Side
from payerbridge_tools.cli.bench import bench_app


def _run() -> IdleRun:
    readings = [
        Reading("before", "SQLite", "serve", 1, 3.0, 60, (200.0, 100.0)),
        Reading("before", "SQLite", "serve", 2, 3.6, 60, (300.0,)),
        Reading("after", "SQLite", "serve", 1, 0.45, 60, (150.0,)),
        Reading("after", "SQLite", "serve --no-workers", 1, 0.24, 60),
    ]
    sides = (Side("before", "/tmp/base"), Side("after", "HEAD"))
    return IdleRun(sides, ("SQLite",), 60, 75, tuple(readings), {"HEAD": "abc1234"})


def test_each_process_is_a_median_of_its_rounds_in_percent_of_a_core() -> None:
    rows = summary_rows(_run())
    assert rows == [
        ("SQLite", "serve", "before", "5.50", "5.00, 6.00", "200", "300"),
        ("SQLite", "serve", "after", "0.75", "0.75", "150", "150"),
        ("SQLite", "serve --no-workers", "after", "0.40", "0.40", "", ""),
    ]


def test_the_report_names_each_side_and_its_commit() -> None:
    report = report_markdown(_run(), ["- machine: test"])
    assert "| after | HEAD (abc1234) |" in report
    assert "| SQLite | serve | after | 0.75 | 0.75 | 150 | 150 |" in report
    assert "75 s warm-up" in report and "over 60 s" in report


def test_a_malformed_side_is_refused() -> None:
    result = CliRunner().invoke(bench_app, ["idle", "--side", "oops"])
    assert result.exit_code == 2
