"""``payerbridge bench console`` through its CLI, at a small size: every page of the API
and the console answered as its role, timed, reported; on SQLite and (when tested there)
PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ADMIN_URL
from tests.servers import run_cli

# A whole benchmark run: `pytest -m bench` (make test leaves it out).
pytestmark = pytest.mark.bench


def test_the_console_benchmark_times_every_page(tmp_path: Path) -> None:
    report = tmp_path / "console.md"
    args = [
        "bench",
        "console",
        "--members",
        "1000",
        "--exchanges",
        "400",
        "--match-requests",
        "200",
        "--repeat",
        "5",
        "--report",
        str(report),
    ]
    env = {}
    if os.environ.get("PAYERBRIDGE_TEST_BACKEND") == "postgres":
        env["PAYERBRIDGE_BENCH_DATABASE_URL"] = ADMIN_URL
    result = run_cli(args, env=env, timeout=280)
    assert result.returncode == 0, result.stderr[-3000:]
    text = report.read_text()
    rows = [line for line in text.splitlines() if line.startswith(("| API |", "| console |"))]
    backends = 2 if env else 1
    assert len(rows) == 27 * backends
    assert sum(line.startswith("| console |") for line in rows) == 14 * backends
    assert "400 exchanges" in text and "1,000 members" in text
