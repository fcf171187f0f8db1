"""The shipped Prometheus rules (deploy/prometheus/alerts.yml): valid for Prometheus
(`promtool check rules`), each alert firing, or not, as its unit tests say
(`promtool test rules`; the dead-letter, obligation and partner alerts from series that
were absent before), each one tested firing, each with an absolute runbook_url whose page
exists; and `payerbridge alerts rules` writes them with this deployment's runbook links.

promtool comes with Debian's ``prometheus`` package (`.ci/run` installs it under CI):
without it the promtool tests skip, except under ``CI=true``, where they fail."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from payerbridge.errors import InvalidInput
from payerbridge.metrics.alert_rules import DEFAULT_RUNBOOK_BASE_URL, render_rules

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus"
TESTS = ["alerts_test.yml", "alerts_drift_test.yml", "alerts_absent_test.yml"]


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing: CI installs Debian's prometheus package (.ci/run)")
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return found


def _run(*args: str, tries: int = 1, cwd: Path = RULES) -> str:
    for _ in range(tries):
        done = subprocess.run(
            [_promtool(), *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode == 0:
            break
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _alerts() -> dict[str, str]:
    """Each alert's name and its runbook_url."""
    text = (RULES / "alerts.yml").read_text()
    names = re.findall(r"^\s+- alert: (\w+)$", text, flags=re.MULTILINE)
    runbooks = re.findall(r"^\s+runbook_url: (\S+)$", text, flags=re.MULTILINE)
    assert len(names) == len(runbooks), "every alert needs a runbook_url"
    return dict(zip(names, runbooks, strict=True))


def test_the_rules_are_valid_for_prometheus() -> None:
    assert "SUCCESS" in _run("check", "rules", "alerts.yml")


def test_the_alerts_fire_as_their_unit_tests_say() -> None:
    # promtool 2.42 (Debian 12) now and then evaluates none of the 7-day drift alerts on a
    # loaded machine: seen once in ten runs beside three busy processes, never on a quiet
    # one, and the same file passes at once when run again. A rule of ours that is wrong
    # fails every try, so a second try hides no fault of ours.
    output = _run("test", "rules", *TESTS, tries=2)
    assert output.count("SUCCESS") == len(TESTS), output


def test_every_alert_is_tested_firing_and_has_a_runbook() -> None:
    tests = "".join((RULES / name).read_text() for name in TESTS)
    for name, runbook in _alerts().items():
        firing = rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels:"
        assert re.search(firing, tests), f"{name}: no test where it fires"
        page = runbook.removeprefix(f"{DEFAULT_RUNBOOK_BASE_URL}/")
        assert re.fullmatch(r"alert-[a-z-]+", page), runbook
        assert (ROOT / "docs" / "runbooks" / f"{page}.md").is_file(), f"{name}: {page} is missing"


def test_the_dead_letter_and_obligation_alerts_are_tested_from_absent_series() -> None:
    absent = (RULES / "alerts_absent_test.yml").read_text()
    for name in ("PayerbridgeDeadLettersGrowing", "PayerbridgeObligationsMissed"):
        assert re.search(rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels:", absent)
    assert re.search(r"payerbridge_dead_letters\{[^}]*\}'\n\s+values: '_x", absent)
    assert re.search(r"payerbridge_obligations_open\{[^}]*missed[^}]*\}'\n\s+values: '_x", absent)


def _rendered(tmp_path: Path, env: dict[str, str]) -> str:
    """`payerbridge alerts rules --output` under ``env``'s settings."""
    output = tmp_path / "alerts.yml"
    done = subprocess.run(
        [sys.executable, "-m", "payerbridge", "alerts", "rules", "--output", str(output)]
        + ["--data-dir", str(tmp_path / "var")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return output.read_text()


def test_the_rules_are_written_with_this_deployments_runbook_links(tmp_path: Path) -> None:
    base = "https://payerbridge.plan.example/runbooks"
    text = _rendered(tmp_path, {"PAYERBRIDGE_RUNBOOK_BASE_URL": base})
    shipped = (RULES / "alerts.yml").read_text()
    links = re.findall(r"^\s+runbook_url: (\S+)$", text, flags=re.MULTILINE)
    assert links == [link.replace(DEFAULT_RUNBOOK_BASE_URL, base) for link in _alerts().values()]
    # Nothing else changed: the same rules, with the same tests passing on them.
    assert text.replace(base, DEFAULT_RUNBOOK_BASE_URL) == shipped
    assert "SUCCESS" in _run("check", "rules", str(tmp_path / "alerts.yml"), cwd=tmp_path)


def test_a_runbook_url_template_wins_and_the_defaults_are_absolute(tmp_path: Path) -> None:
    wiki = "https://wiki.plan.example/payerbridge/{code}.md"
    text = _rendered(tmp_path, {"PAYERBRIDGE_RUNBOOK_URL": wiki})
    assert (
        "runbook_url: https://wiki.plan.example/payerbridge/alert-dead-letters-growing.md" in text
    )
    public = _rendered(tmp_path, {"PAYERBRIDGE_PUBLIC_BASE_URL": "https://pb.plan.example"})
    assert "runbook_url: https://pb.plan.example/runbooks/alert-partner-errors-rising\n" in public
    bare = _rendered(tmp_path, {})  # no public base URL: the project's pages
    assert bare == (RULES / "alerts.yml").read_text()


def test_a_rules_file_whose_links_are_not_the_shipped_ones_is_refused() -> None:
    shipped = (RULES / "alerts.yml").read_text()
    relative = shipped.replace(
        f"{DEFAULT_RUNBOOK_BASE_URL}/alert-pulls-overdue", "docs/runbooks/alert-pulls-overdue.md"
    )
    with pytest.raises(InvalidInput) as refused:
        render_rules(relative, "https://x.example/{code}")
    assert "docs/runbooks/alert-pulls-overdue.md" in refused.value.issues[0].text
