"""Reconciling received data by source identity (pure): ids, what is no longer sent, the end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from payerbridge.exchange.model import ExchangeState
from payerbridge.exchange.received.normalize import Receipt, normalize_everything_bundle
from payerbridge.exchange.received.reconcile import (
    Holder,
    conflicts_with_held,
    differing_paths,
    end_reason,
    end_state,
    stale_refs,
)
from payerbridge.fhir.completeness import Gap
from payerbridge.routing.model import Organization

OLD = Organization("Old", "1245319599", "http://old/fhir")
KINDS = ["Condition", "Observation", "Encounter"]


def _answer(ids: list[tuple[str, str]], status: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [{"resource": {"resourceType": "Patient", "id": "p1"}}]
    for kind, rid in ids:
        subject = "patient" if kind == "AllergyIntolerance" else "subject"
        entries.append(
            {
                "resource": {
                    "resourceType": kind,
                    "id": rid,
                    "status": status,
                    subject: {"reference": "Patient/p1"},
                }
            }
        )
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries}


def _store(held: dict[str, tuple[str, str]], answer: dict[str, Any], holder: Holder) -> None:
    """What the exchange does with an answer: upsert its resources, remove what a complete
    answer no longer sends (held: ref → (compartment, holder's client))."""
    normalized = normalize_everything_bundle(
        answer,
        Receipt(
            holder, OLD, Organization("New", "1234567893"), datetime(2026, 11, 1, tzinfo=UTC), "x"
        ),
    )
    mine = [ref for ref, (patient, _) in held.items() if patient == normalized.patient_id]
    for ref in stale_refs(mine, normalized.refs, complete=not normalized.gaps):
        del held[ref]
    for resource, patient in normalized.resources:
        ref = f"{resource['resourceType']}/{resource['id']}"
        assert held.get(ref, (patient, holder.client_id)) == (patient, holder.client_id)
        held[ref] = (str(patient), holder.client_id)


records = st.lists(
    st.tuples(st.sampled_from(KINDS), st.sampled_from(["a", "b", "c", "d"])),
    unique=True,
    max_size=6,
)


@given(records, records, records, st.sampled_from(["active", "resolved"]))
def test_two_answers_for_a_member_leave_one_resource_per_source_identity_per_client(
    first: list[tuple[str, str]],
    second: list[tuple[str, str]],
    others: list[tuple[str, str]],
    status: str,
) -> None:
    ours, theirs = Holder("plan-a", "M1", OLD.npi), Holder("plan-b", "M1", OLD.npi)
    held: dict[str, tuple[str, str]] = {}
    _store(held, _answer(first, "active"), ours)
    _store(held, _answer(others, "active"), theirs)  # another client, the same member
    _store(held, _answer(second, status), ours)
    mine = {ref for ref, (_, client) in held.items() if client == "plan-a"}
    # The second (complete) answer is what we hold: its resources, one Patient, one receipt.
    assert len(mine) == len(second) + 2
    assert {ref.split("/")[0] for ref in mine} >= {"Patient", "Provenance"}
    assert {ref for ref, (_, client) in held.items() if client == "plan-b"}.isdisjoint(mine)
    assert len({ref for ref, (_, c) in held.items() if c == "plan-b"}) == len(others) + 2


def test_a_partial_answer_removes_nothing_and_a_complete_one_what_it_no_longer_sends() -> None:
    assert stale_refs(["A/1", "A/2"], ["A/1"], complete=False) == []
    assert stale_refs(["A/1", "A/2"], ["A/1"], complete=True) == ["A/2"]


def test_the_end_follows_from_gaps_and_conflicts() -> None:
    gap = Gap("claims", ("ExplanationOfBenefit",), "source-timeout", "slow", True)
    held = {"resourceType": "Coverage", "id": "h", "status": "active", "meta": {"source": "x"}}
    held["identifier"] = [{"system": "urn:s", "value": "v"}]
    new = {**held, "id": "n", "status": "cancelled", "meta": {"source": "y"}}
    conflicts = conflicts_with_held([new], [held])
    assert [c.paths for c in conflicts] == [("status",)]
    assert end_state([], []) is ExchangeState.COMPLETED
    assert end_state([gap], []) is ExchangeState.PARTIAL
    assert end_state([gap], conflicts) is ExchangeState.CONFLICT
    assert end_reason([], []) is None
    code, text = end_reason([gap], [])  # type: ignore[misc]
    assert code == "incomplete" and "ExplanationOfBenefit from 'claims'" in text
    assert "asking again may help" in text


def test_differing_paths_name_fields_not_values_and_ignore_ids_and_references() -> None:
    a = {"id": "1", "code": {"coding": [{"code": "x"}]}, "subject": {"reference": "Patient/1"}}
    b = {"id": "2", "code": {"coding": [{"code": "y"}]}, "subject": {"reference": "Patient/2"}}
    assert differing_paths(a, b) == ("code.coding[0].code",)
    assert differing_paths(a, a) == ()
