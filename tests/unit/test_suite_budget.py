"""The suite's budget plugin (tests/budget.py, ADR 0028): its pure parts, and one tiny
suite on two xdist workers whose tests pass and whose run fails for its budget."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.budget import (
    BUDGET_SETTING,
    machine_stretch,
    over_budget,
    parse_budget,
    per_module,
    slowest,
)

ROOT = Path(__file__).resolve().parents[2]


def test_no_setting_or_an_empty_one_means_no_budget() -> None:
    assert parse_budget(None) is None
    assert parse_budget("") is None
    assert parse_budget("  ") is None
    assert parse_budget("540") == 540.0
    assert parse_budget("7.5") == 7.5


@pytest.mark.parametrize("value", ["ten", "0", "-5"])
def test_a_budget_that_is_not_a_positive_number_is_a_usage_error(value: str) -> None:
    with pytest.raises(pytest.UsageError, match=BUDGET_SETTING):
        parse_budget(value)


def test_the_slowest_come_first_and_ties_by_name() -> None:
    durations = {"a.py::t1": 1.0, "b.py::t2": 3.0, "a.py::t3": 3.0, "c.py::t4": 0.5}
    assert slowest(durations, 3) == [("a.py::t3", 3.0), ("b.py::t2", 3.0), ("a.py::t1", 1.0)]
    assert slowest({}, 20) == []


def test_a_module_sums_its_tests_parametrized_and_in_classes() -> None:
    durations = {
        "tests/e2e/test_a.py::test_x[1]": 2.0,
        "tests/e2e/test_a.py::TestY::test_z": 3.0,
        "tests/unit/test_b.py::test_w": 4.0,
    }
    assert per_module(durations) == [
        ("tests/e2e/test_a.py", 5.0, 2),
        ("tests/unit/test_b.py", 4.0, 1),
    ]


def test_a_slow_machine_stretches_the_budget_by_its_slowness_and_no_further() -> None:
    assert machine_stretch(10.0) == 1.0  # a fast day never shrinks it
    assert machine_stretch(23.0) == 1.0
    assert machine_stretch(46.0) == 2.0
    assert machine_stretch(500.0) == 3.0


def test_only_a_wall_time_past_the_budget_fails() -> None:
    assert over_budget(900.0, None) is None
    assert over_budget(540.0, 540.0) is None
    message = over_budget(541.0, 540.0)
    assert message is not None
    assert "541 s" in message and "540 s" in message and BUDGET_SETTING in message


_TINY_SUITE = """
import time
import pytest

@pytest.fixture
def slow_both_ends():
    time.sleep(0.1)
    yield
    time.sleep(0.1)

def test_slow(slow_both_ends):
    time.sleep(0.1)

def test_quick():
    pass
"""


def _run_tiny_suite(tmp_path: Path, budget: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_tiny.py").write_text(_TINY_SUITE)
    env = {**os.environ, "PYTHONPATH": str(ROOT), BUDGET_SETTING: budget}
    env.pop("PYTEST_ADDOPTS", None)
    # Only the plugins it needs (no hypothesis, coverage or timeout): a second or two.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "xdist.plugin", "-p", "tests.budget"]
        + ["-p", "no:cacheprovider", "-n", "2", "-q", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_passing_suite_over_its_budget_fails_and_names_the_setting(tmp_path: Path) -> None:
    done = _run_tiny_suite(tmp_path, "0.01")
    out = done.stdout
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, out + done.stderr
    assert "2 passed" in out
    assert f"over its budget of 0 s ({BUDGET_SETTING})" in out
    # The controller summed the workers' reports: the slow test's setup, call and
    # teardown (0.3 s at least), listed first.
    rows = re.findall(r"^\s+(\d+\.\d+)s  (\S+)$", out, re.MULTILINE)
    assert rows[0][1].endswith("test_tiny.py::test_slow"), out
    assert float(rows[0][0]) >= 0.3
    assert any(name.endswith("test_tiny.py::test_quick") for _, name in rows)
