"""The completeness OperationOutcome, both ways: what an old payer builds, a requester reads."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.fhir.completeness import (
    COMPLETENESS_SYSTEM,
    GAP_CODES,
    RETRY_EXTENSION,
    SOURCE_EXTENSION,
    UNKNOWN,
    Gap,
    completeness_outcome,
    gaps_of,
    outcome_entry,
)

types = st.sampled_from(["Coverage", "ExplanationOfBenefit", "Condition", "Observation"])
gaps = st.builds(
    Gap,
    source=st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=20),
    types=st.lists(types, min_size=1, max_size=3, unique=True).map(tuple),
    code=st.sampled_from(sorted(GAP_CODES)),
    text=st.text(min_size=1, max_size=80),
    retry_may_help=st.booleans(),
)


@given(st.lists(gaps, min_size=1, max_size=4))
def test_what_the_old_payer_builds_the_requester_reads_back(built: list[Gap]) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": {"resourceType": "Patient", "id": "p1"}}, outcome_entry(built)],
    }
    assert gaps_of(bundle) == built
    assert gaps_of(completeness_outcome(built)) == built


def test_the_outcome_has_the_agreed_shape() -> None:
    gap = Gap("claims", ("ExplanationOfBenefit", "Coverage"), "source-unavailable", "down", True)
    (issue,) = completeness_outcome([gap])["issue"]
    assert (issue["severity"], issue["code"]) == ("warning", "incomplete")
    assert issue["details"]["coding"] == [
        {"system": COMPLETENESS_SYSTEM, "code": "source-unavailable"}
    ]
    assert issue["expression"] == ["ExplanationOfBenefit", "Coverage"]
    assert issue["extension"] == [
        {"url": SOURCE_EXTENSION, "valueString": "claims"},
        {"url": RETRY_EXTENSION, "valueBoolean": True},
    ]
    assert outcome_entry([gap])["search"] == {"mode": "outcome"}


def test_another_payers_outcome_is_a_gap_of_unknown_source_and_information_is_not() -> None:
    foreign = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "exception", "diagnostics": "lab system down"},
            {"severity": "warning", "code": "incomplete", "expression": ["Observation"]},
            {"severity": "information", "code": "informational", "diagnostics": "fyi"},
        ],
    }
    bundle = {"resourceType": "Bundle", "entry": [{"resource": foreign}]}  # no search.mode
    first, second = gaps_of(bundle)
    assert (first.source, first.types, first.code) == (UNKNOWN, (UNKNOWN,), "exception")
    assert first.text == "lab system down" and first.retry_may_help
    assert (second.types, second.code) == (("Observation",), "incomplete")


@settings(max_examples=40)
@given(
    st.recursive(
        st.none() | st.booleans() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_anything_else_declares_no_gap_and_never_raises(junk: object) -> None:
    gaps_of(junk)
    gaps_of({"resourceType": "Bundle", "entry": [junk]})
    gaps_of({"resourceType": "OperationOutcome", "issue": [junk]})
