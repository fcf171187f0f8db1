"""The searches a requester needs: which parameters each type takes, refused by name
otherwise, and how tokens, codes, profiles and dates match."""

from __future__ import annotations

from typing import Any

import pytest

from payerbridge.disclosure.search import (
    PRIOR_AUTHORIZATION_PROFILE,
    parse_patient_search,
    parse_search,
)
from payerbridge.errors import InvalidInput

LOINC = "http://loinc.org"


def observation(**more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                  "observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": "2339-0"}]},
        "effectiveDateTime": "2024-03-05T10:00:00Z",
        **more,
    }  # fmt: skip


def search(resource_type: str, **params: str) -> Any:
    return parse_search(resource_type, list(params.items()), max_count=100)


def test_a_search_names_its_member_and_matches_every_parameter() -> None:
    query = search(
        "Observation", patient="Patient/p1", category="laboratory", code=f"{LOINC}|2339-0"
    )
    assert query.patient_id == "p1" and query.count == 100
    assert query.matches(observation())
    assert not query.matches(observation(code={"coding": [{"system": LOINC, "code": "x"}]}))
    assert search("Observation", patient="p1", code="2339-0,999").matches(observation())
    assert not search("Observation", patient="p1", code="other|2339-0").matches(observation())


@pytest.mark.parametrize(
    ("value", "matches"),
    [
        ("2024", True), ("2024-03", True), ("2024-03-05", True), ("2024-03-06", False),
        ("ge2024-03-01", True), ("ge2024-04", False), ("le2024-03-05", True),
        ("lt2024-03-05", False), ("gt2024-02", True), ("lt2025", True),
    ],
)  # fmt: skip
def test_dates_compare_by_the_span_each_side_stands_for(value: str, matches: bool) -> None:
    assert search("Observation", patient="p1", date=value).matches(observation()) is matches


def test_prior_authorizations_by_profile_and_coverage_by_beneficiary() -> None:
    query = search("ExplanationOfBenefit", patient="p1", _profile=PRIOR_AUTHORIZATION_PROFILE)
    pa = {
        "resourceType": "ExplanationOfBenefit",
        "meta": {"profile": [PRIOR_AUTHORIZATION_PROFILE]},
    }
    assert query.matches(pa) and not query.matches({"resourceType": "ExplanationOfBenefit"})
    assert search("Coverage", beneficiary="Patient/p1").patient_id == "p1"
    assert search("Encounter", patient="p1", _revinclude="Provenance:target").revinclude_provenance


@pytest.mark.parametrize(
    ("resource_type", "params", "named"),
    [
        ("Observation", {}, "patient"),
        ("Observation", {"patient": "p1", "code:text": "glucose"}, "code:text"),
        ("Observation", {"patient": "p1", "value-quantity": "5"}, "value-quantity"),
        ("Observation", {"patient": "p1", "date": "last tuesday"}, "date"),
        ("Observation", {"patient": "p1", "_count": "0"}, "_count"),
        ("Observation", {"patient": "p1", "_revinclude": "Condition:subject"}, "_revinclude"),
        ("Coverage", {"beneficiary": "Patient/p1/x"}, "beneficiary"),
        ("Starship", {"patient": "p1"}, "Starship"),
    ],
)
def test_what_is_not_supported_is_refused_by_name(
    resource_type: str, params: dict[str, str], named: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        search(resource_type, **params)
    assert [issue.expression for issue in refused.value.issues] == [named]


def test_a_patient_search_takes_an_identifier_with_or_without_its_system() -> None:
    umb = parse_patient_search([("identifier", "http://plan.example/umb|U-1")])
    assert umb.identifier == ("http://plan.example/umb", "U-1") and not umb.revinclude_provenance
    assert parse_patient_search([("identifier", "U-1")]).identifier == (None, "U-1")
    assert parse_patient_search([("identifier", "|U-1")]).identifier == (None, "U-1")
    both = parse_patient_search([("_id", "p1"), ("_revinclude", "Provenance:target")])
    assert both.resource_id == "p1" and both.identifier is None and both.revinclude_provenance


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ([("identifier", "U-1"), ("name", "Garcia")], "name"),
        ([("identifier", "U-1"), ("identifier", "U-2")], "identifier"),
        ([("identifier", "U-1,U-2")], "identifier"),
        ([("_id", "p1"), ("_revinclude", "Observation:subject")], "_revinclude"),
        ([("_id", "p1"), ("_count", "5")], "_count"),
        ([("identifier:exact", "U-1")], "identifier:exact"),
        ([], "identifier"),
    ],
)
def test_a_patient_search_refuses_what_it_does_not_support_by_name(
    params: list[tuple[str, str]], named: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_patient_search(params)
    assert [issue.expression for issue in refused.value.issues] == [named]


def test_include_follows_the_references_the_type_offers_and_refuses_others() -> None:
    query = search("MedicationRequest", patient="p1", _include="MedicationRequest:medication")
    assert query.includes == ("medicationReference",)
    with pytest.raises(InvalidInput) as refused:
        search("Observation", patient="p1", _include="Observation:performer")
    (issue,) = refused.value.issues
    assert issue.expression == "_include" and "supported: none" in issue.text
    with pytest.raises(InvalidInput) as refused:
        search("Encounter", patient="p1", _include="Encounter:participant")
    assert "Encounter:service-provider" in refused.value.issues[0].text
