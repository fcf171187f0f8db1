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
        "pharmacy-claims",
    } <= names


def test_pharmacy_fills_go_under_regular_but_prep_and_moud() -> None:
    """What the recorded pharmacy scenario released (checked against a live run above):
    every fill of the member from both sources but her HIV PrEP and MOUD ones."""
    (scenario,) = [s for s in SCENARIOS if s.name == "pharmacy-claims"]
    released = orjson.loads(scenario.expected.read_bytes())["everything"]["resources"]
    claims = {
        r["identifier"][0]["value"]: {c["code"] for c in r["item"][0]["productOrService"]["coding"]}
        for r in released
        if r["resourceType"] == "ExplanationOfBenefit"
    }
    # Truvada (PrEP), Suboxone film and generic buprenorphine/naloxone (MOUD) stay back.
    assert set(claims) == {
        "1234567893-RX5000001-0-20250310",
        "1234567893-RX5000002-4-20250407",
        "PBM-0001",
        "PBM-0003",
    }
    assert not {"61958070101", "12496120803", "00054018813"} & set().union(*claims.values())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_a_scenario_gives_its_recorded_output(scenario: Scenario) -> None:
    assert scenario.expected.is_file(), f"record it: payerbridge golden record {scenario.name}"
    expected = orjson.loads(scenario.expected.read_bytes())
    changes = diff(expected, run(scenario))
    assert not changes, "\n".join(
        [f"{scenario.name} changed; if on purpose: payerbridge golden record", *changes[:200]]
    )
