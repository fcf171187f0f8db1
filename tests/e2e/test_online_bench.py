"""``payerbridge bench online`` through its CLI, at a small size: a revision checked out
for the run against the working tree with tracing on, each side served on fresh copies,
the answers compared and the instructions counted when valgrind is there."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.servers import run_cli

# A whole benchmark run: `pytest -m bench` (make test leaves it out).
pytestmark = pytest.mark.bench

_ROOT = Path(__file__).resolve().parents[2]


def test_a_revision_and_the_working_tree_are_served_in_turn(tmp_path: Path) -> None:
    report = tmp_path / "online.md"
    counting = shutil.which("callgrind_control") is not None
    args = [
        "bench",
        "online",
        "--side",
        "base=HEAD",
        "--side",
        f"traced={_ROOT},PAYERBRIDGE_TRACING=otlp,PAYERBRIDGE_TRACE_SAMPLE_RATIO=1",
        "--members",
        "500",
        "--requests",
        "50",
        "--rounds",
        "2",
        "--timed",
        "200",
        "--count-instructions",
        "50" if counting else "0",
        "--report",
        str(report),
    ]
    result = run_cli(args, timeout=1200, interpreter=True)
    assert result.returncode == 0, result.stderr[-3000:]
    text = report.read_text()
    assert "the same on every side and round" in text
    rounds = [line for line in text.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    # the order turns each round: base then traced, traced then base
    assert [line.split(" | ")[1] for line in rounds] == ["base", "traced", "traced", "base"]
    if counting:
        assert all(float(line.rstrip(" |").rsplit("|", 1)[1]) > 0.5 for line in rounds)
    worktrees = subprocess.run(
        ["git", "-C", str(_ROOT), "worktree", "list"], capture_output=True, text=True
    ).stdout
    assert "payerbridge-bench-ab-" not in worktrees  # the revision's checkout is gone
