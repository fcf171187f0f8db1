"""The suite's time budget (issue 69, ADR 0028): a pytest plugin, registered by
``tests/conftest.py``.

At the end of a session it prints the slowest tests, each test's setup, call and
teardown added together, and the modules that took longest, from the reports the
session collected (under pytest-xdist, those the controller received from every test
worker). When ``PAYERBRIDGE_TEST_BUDGET_SECONDS`` is set (``make test`` sets one per
pass), a session whose wall time passes it fails, whatever its tests did: the suite is
kept under its budget by making tests cheaper, never by leaving them out.

The budgets are for this machine type at its usual speed. A shared host runs the same
fixed pure-Python loop (the one every benchmark report carries as "CPU speed") at 19 to
23 ms on a usual day and several times slower on a bad one; the budget is stretched by
how much slower the loop runs at the session's start than ``REFERENCE_LOOP_MS``, at most
``MAX_STRETCH`` times, and the summary says so. A slow suite on a usual day still fails.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping

import pytest

__all__ = [
    "BUDGET_SETTING",
    "machine_stretch",
    "over_budget",
    "parse_budget",
    "per_module",
    "slowest",
]

BUDGET_SETTING = "PAYERBRIDGE_TEST_BUDGET_SECONDS"
REFERENCE_LOOP_MS = 23.0  # the CPU loop on this machine type on a usual day
MAX_STRETCH = 3.0
SLOWEST = 20  # tests listed
MODULES = 10  # modules listed


def parse_budget(value: str | None) -> float | None:
    """The budget in seconds, or None when the setting is unset or empty (no check)."""
    if value is None or not value.strip():
        return None
    try:
        budget = float(value)
    except ValueError:
        raise pytest.UsageError(f"{BUDGET_SETTING}={value!r} is not a number of seconds") from None
    if budget <= 0:
        raise pytest.UsageError(f"{BUDGET_SETTING}={value!r} must be more than 0 seconds")
    return budget


def slowest(durations: Mapping[str, float], count: int = SLOWEST) -> list[tuple[str, float]]:
    """The ``count`` tests that took longest, longest first (ties by name)."""
    return sorted(durations.items(), key=lambda item: (-item[1], item[0]))[:count]


def per_module(durations: Mapping[str, float]) -> list[tuple[str, float, int]]:
    """Each module's summed time and test count, longest first: a node id's module is
    its part before the first ``::``."""
    seconds: dict[str, float] = defaultdict(float)
    tests: dict[str, int] = defaultdict(int)
    for nodeid, duration in durations.items():
        module = nodeid.split("::", 1)[0]
        seconds[module] += duration
        tests[module] += 1
    return [
        (module, total, tests[module])
        for module, total in sorted(seconds.items(), key=lambda item: (-item[1], item[0]))
    ]


def machine_stretch(loop_ms: float) -> float:
    """How much longer a session may take on a machine whose CPU loop took ``loop_ms``:
    never less than the budget, at most ``MAX_STRETCH`` times it."""
    return min(MAX_STRETCH, max(1.0, loop_ms / REFERENCE_LOOP_MS))


def over_budget(wall: float, budget: float | None) -> str | None:
    """The failure's message when the session's wall time passed the budget, else None."""
    if budget is None or wall <= budget:
        return None
    return (
        f"the session took {wall:.0f} s, over its budget of {budget:.0f} s "
        f"({BUDGET_SETTING}): make the slowest tests above cheaper (ADR 0028); "
        "do not leave tests out"
    )


def _table(rows: Iterable[tuple[str, float]]) -> list[str]:
    return [f"{seconds:8.2f}s  {name}" for name, seconds in rows]


class SuiteBudget:
    """The controller's side: sums each test's phases and judges the wall time."""

    def __init__(self, budget: float | None, stretch: float = 1.0) -> None:
        self.budget = None if budget is None else budget * stretch
        self.stretch = stretch
        self.started = time.monotonic()
        self.wall: float | None = None
        self.durations: dict[str, float] = defaultdict(float)
        self.verdict: str | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.durations[report.nodeid] += report.duration

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.wall = time.monotonic() - self.started
        self.verdict = over_budget(self.wall, self.budget)
        if self.verdict is not None and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.durations:
            return
        write = terminalreporter.write_line
        terminalreporter.write_sep("=", f"{SLOWEST} slowest tests (setup + call + teardown)")
        for line in _table(slowest(self.durations)):
            write(line)
        terminalreporter.write_sep("=", f"{MODULES} slowest modules (tests' time summed)")
        for module, seconds, tests in per_module(self.durations)[:MODULES]:
            write(f"{seconds:8.2f}s  {module} ({tests} tests)")
        wall = self.wall if self.wall is not None else time.monotonic() - self.started
        if self.budget is None:
            write(f"session wall time {wall:.0f} s (no budget: {BUDGET_SETTING} unset)")
        elif self.verdict is None:
            write(f"session wall time {wall:.0f} s, within its budget of {self.budget:.0f} s")
        else:
            terminalreporter.write_sep("=", "over budget", red=True, bold=True)
            write(f"FAILED: {self.verdict}", red=True, bold=True)
        if self.budget is not None and self.stretch > 1.0:
            write(
                f"(the budget stretched {self.stretch:.2f} times: this machine ran the CPU "
                f"loop {self.stretch:.2f} times slower than its usual {REFERENCE_LOOP_MS:.0f} ms)"
            )


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller reports
        return
    budget = parse_budget(os.environ.get(BUDGET_SETTING))
    stretch = 1.0
    if budget is not None:
        from payerbridge_tools.bench.machine import cpu_reference_ms

        stretch = machine_stretch(cpu_reference_ms())
    config.pluginmanager.register(SuiteBudget(budget, stretch), "payerbridge-suite-budget")
