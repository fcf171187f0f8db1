"""The golden request suite (``payerbridge_tools.golden``): each scenario under
tests/golden run through an old payer as a partner asks it, its canonical output
compared with the one recorded. A change to a mapping, an adapter, the profiles or the
identity engine that changes an output fails here until it is recorded again, on
purpose: ``payerbridge golden record`` (the diff is shown)."""

from __future__ import annotations

import orjson
import pytest

from payerbridge_tools.golden import Scenario, diff, run, scenarios

SCENARIOS = scenarios()


def test_the_representative_scenarios_are_there() -> None:
    names = {s.name for s in SCENARIOS}
    assert {
        "clean-member",
        "sensitive-record",
        "hrex-1.0.0-partner",
        "fhir-server-quirks",
        "source-down",
        "legacy-x12-csv",
        "two-sources-conflict",
    } <= names


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_a_scenario_gives_its_recorded_output(scenario: Scenario) -> None:
    assert scenario.expected.is_file(), f"record it: payerbridge golden record {scenario.name}"
    expected = orjson.loads(scenario.expected.read_bytes())
    changes = diff(expected, run(scenario))
    assert not changes, "\n".join(
        [f"{scenario.name} changed; if on purpose: payerbridge golden record", *changes[:200]]
    )
