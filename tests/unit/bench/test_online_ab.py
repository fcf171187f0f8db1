"""``bench online``'s pure parts: a side as written, the pairs' ratios and the report, and
the callgrind file it reads; a side it cannot use is refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from payerbridge_tools.bench.online_ab import (
    Measurement,
    OnlineAB,
    Side,
    _instructions,
    parse_side,
    report_markdown,
    summary_rows,
)
from payerbridge_tools.cli.bench import bench_app


def test_a_side_is_a_name_a_source_and_its_settings() -> None:
    side = parse_side("traced=abc123,PAYERBRIDGE_TRACING=otlp,PAYERBRIDGE_TRACE_SAMPLE_RATIO=0.01")
    assert side == Side(
        "traced",
        "abc123",
        {"PAYERBRIDGE_TRACING": "otlp", "PAYERBRIDGE_TRACE_SAMPLE_RATIO": "0.01"},
    )
    assert parse_side("base=../old") == Side("base", "../old", {})
    # a report names the commit a directory held ("+": changed since), a revision as given
    assert side.describe("abc123") == "abc123 with PAYERBRIDGE_TRACE_SAMPLE_RATIO=0.01, " + (
        "PAYERBRIDGE_TRACING=otlp"
    )
    assert Side("head", ".").describe("9c171b7+") == ". (9c171b7+)"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("nosource", "NAME=SOURCE"),
        ("=src", "NAME=SOURCE"),
        ("a b=src", "NAME=SOURCE"),
        ("head=.,TRACING=otlp", "'TRACING=otlp'"),
        ("head=.,PAYERBRIDGE_TRACING", "'PAYERBRIDGE_TRACING'"),
    ],
)
def test_a_side_written_otherwise_is_refused_naming_it(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse_side(text)


def _measured(side: str, round_number: int, rate: float, cpu: float, count: float) -> Measurement:
    return Measurement(side, round_number, rate, cpu, ((200, 90), (422, 10)), count)


def _result(*measurements: Measurement) -> OnlineAB:
    sides = (Side("base", "a1"), Side("head", ".", {"PAYERBRIDGE_TRACING": "otlp"}))
    return OnlineAB(sides, measurements, 1000, 100, 8, 600, 200, True)


def test_each_side_is_read_by_its_medians_and_its_pairs_with_the_first() -> None:
    result = _result(
        _measured("base", 1, 100, 1.0, 4.0),
        _measured("head", 1, 90, 1.1, 4.2),
        _measured("head", 2, 200, 1.2, 4.4),
        _measured("base", 2, 200, 1.0, 4.0),
        _measured("base", 3, 300, 1.0, 4.0),
        _measured("head", 3, 330, 0.9, 4.0),
    )
    base, head = summary_rows(result)
    assert base == ["base", "a1", "200", "", "1.000", "", "4.0000", ""]
    # requests/s: pairs 0.9, 1.0, 1.1 (median 1.0) although the medians are 200 and 200
    assert head == [
        "head",
        ". with PAYERBRIDGE_TRACING=otlp",
        "200",
        "+0.0 %",
        "1.100",
        "+10.0 %",
        "4.2000",
        "+5.0 %",
    ]
    report = report_markdown(result, ["- machine: test"])
    assert "the same on every side and round (90 × 200, 10 × 422)" in report
    assert "| 2 | head | 200 | 1.200 | 4.4000 |" in report


def test_a_side_that_answers_otherwise_is_named() -> None:
    other = Measurement("head", 1, 100, 1.0, ((200, 89), (422, 11)), 4.0)
    result = _result(_measured("base", 1, 100, 1.0, 4.0), other)
    assert result.differing_answers() == ["head"]
    report = report_markdown(result, [])
    # Each side's answers, so that a change that answers otherwise says by how much.
    assert "DIFFERENT on head (base round 1: 90 × 200, 10 × 422; head round 1: 89 × 200" in (report)


def test_the_main_threads_totals_are_read_not_its_summary(tmp_path: Path) -> None:
    prefix = tmp_path / "callgrind.out"
    prefix.with_name("callgrind.out-01").write_text(
        "version: 1\ncmd: python\nthread: 1\nevents: Ir\nsummary: 0\ntotals: 383457769\n"
    )
    prefix.with_name("callgrind.out-02").write_text("thread: 2\nevents: Ir\ntotals: 99\n")
    assert _instructions(prefix) == 383457769
    with pytest.raises(RuntimeError, match="no file for the main thread"):
        _instructions(tmp_path / "missing")


def test_the_command_refuses_a_side_it_cannot_use_before_running_anything() -> None:
    result = CliRunner().invoke(bench_app, ["online", "--side", "head=.", "--side", "oops"])
    assert result.exit_code == 2
    assert "NAME=SOURCE" in result.output
    result = CliRunner().invoke(bench_app, ["online", "--side", "head=.", "--side", "head=."])
    assert result.exit_code == 2
    assert "each once" in result.output
