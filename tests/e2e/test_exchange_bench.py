"""``payerbridge bench exchanges`` through its CLI: real stub partner, worker processes,
a report with every exchange completed, on SQLite and (when tested there) PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ADMIN_URL
from tests.servers import run_cli

# A whole benchmark run: `pytest -m bench` (make test leaves it out).
pytestmark = pytest.mark.bench


def test_the_exchange_benchmark_reports_both_deployments(tmp_path: Path) -> None:
    report = tmp_path / "exchanges.md"
    args = [
        "bench",
        "exchanges",
        "--exchanges",
        "6",
        "--one-at-a-time",
        "2",
        "--repeat",
        "1",
        "--workers",
        "0,1",
        "--report",
        str(report),
    ]
    env = {}
    if os.environ.get("PAYERBRIDGE_TEST_BACKEND") == "postgres":
        env["PAYERBRIDGE_BENCH_DATABASE_URL"] = ADMIN_URL
    result = run_cli(args, env=env, timeout=280)
    assert result.returncode == 0, result.stderr[-3000:]
    text = report.read_text()
    rows = [
        line
        for line in text.splitlines()
        if line.startswith("| SQLite") or line.startswith("| PostgreSQL")
    ]
    assert len(rows) == (4 if env else 2), text
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2:4] == ["6", "6"], row  # submitted at once, completed
        assert float(cells[4]) > 0  # exchanges/s
        assert float(cells[5]) > 0  # overhead, one at a time
    assert "0 (the API process works)" in text and "1 + the API process" in text
    assert "python: CPython" in text
