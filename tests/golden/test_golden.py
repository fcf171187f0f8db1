"""The golden request suite (``payerbridge_tools.golden``): each scenario under
tests/golden run through an old payer as a partner asks it, its canonical output
compared with the one recorded. A change to a mapping, an adapter, the profiles or the
identity engine that changes an output fails here until it is recorded again, on
purpose: ``payerbridge golden record`` (the diff is shown)."""

from __future__ import annotations

from typing import Any

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
        "x12-dependent",
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


def test_a_dependents_subscriber_goes_with_her_record_named_and_addressed() -> None:
    """What the recorded x12-dependent scenario released (checked against a live run
    below): the RelatedPerson the 834 gives a dependent, the subscriber named and
    addressed from his own member loop (ADR 0058), in her $everything with her Coverages
    typed by their insurance line and her claim's attending physician."""
    (scenario,) = [s for s in SCENARIOS if s.name == "x12-dependent"]
    released = orjson.loads(scenario.expected.read_bytes())["everything"]["resources"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in released:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    (patient,) = by_type["Patient"]
    (related,) = by_type["RelatedPerson"]
    assert related["patient"]["reference"] == f"Patient/{patient['id']}"
    assert related["name"][0]["family"] == "RIVERA" and related["name"][0]["given"][0] == "CARLOS"
    assert related["address"][0]["line"] == ["12 HARBOR WAY", "APT 3"]
    assert related["relationship"][0]["coding"][0]["code"] == "PRN"
    assert sorted(c["type"]["coding"][1]["code"] for c in by_type["Coverage"]) == ["DEN", "PPO"]
    (eob,) = by_type["ExplanationOfBenefit"]
    assert [m["role"]["coding"][0]["code"] for m in eob["careTeam"]] == ["attending"]
    assert eob["careTeam"][0]["provider"]["identifier"]["value"] == "1467560003"
    targets = {t["reference"] for p in by_type["Provenance"] for t in p["target"]}
    assert f"RelatedPerson/{related['id']}" in targets


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_a_scenario_gives_its_recorded_output(scenario: Scenario) -> None:
    assert scenario.expected.is_file(), f"record it: payerbridge golden record {scenario.name}"
    expected = orjson.loads(scenario.expected.read_bytes())
    changes = diff(expected, run(scenario))
    assert not changes, "\n".join(
        [f"{scenario.name} changed; if on purpose: payerbridge golden record", *changes[:200]]
    )
