"""What leaves for one member: the records and the shared resources they reach, judged
together, so that nothing a ``regular`` consent withholds goes by reference, and nothing
left points at what was withheld."""

from __future__ import annotations

from typing import Any

from payerbridge.consent.model import ConsentPolicy
from payerbridge.disclosure.release import release
from payerbridge.fhir.resources import iter_references
from tests.builders import WITHHELD_UNDER_REGULAR, a_member_reaching_sensitive_shared_data


class Store:
    def __init__(self, resources: dict[str, dict[str, Any]]) -> None:
        self.resources = resources
        self.asked: list[list[str]] = []

    def read_many(self, refs: list[str]) -> list[dict[str, Any]]:
        self.asked.append(refs)
        return [self.resources[ref] for ref in refs if ref in self.resources]


def compartment(resources: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    own = (
        "Patient",
        "Coverage",
        "MedicationRequest",
        "ExplanationOfBenefit",
        "Encounter",
        "Provenance",
    )
    return [r for r in resources.values() if r["resourceType"] in own]


def keys(resources: list[dict[str, Any]]) -> set[str]:
    return {f"{r['resourceType']}/{r['id']}" for r in resources}


def test_under_regular_nothing_sensitive_goes_by_reference_and_nothing_points_at_it() -> None:
    data = a_member_reaching_sensitive_shared_data()
    released = release(compartment(data), Store(data), ConsentPolicy.REGULAR)
    assert keys(released.resources) == set(data) - WITHHELD_UNDER_REGULAR
    assert released.withheld_count == len(WITHHELD_UNDER_REGULAR)
    for resource in released.resources:
        assert not set(iter_references(resource)) & WITHHELD_UNDER_REGULAR, resource
    by_key = {f"{r['resourceType']}/{r['id']}": r for r in released.resources}
    # Kept resources lose the link, not themselves; what they hold is not changed in place.
    assert "partOf" not in by_key["Organization/clinic"]
    assert "managingOrganization" not in by_key["Patient/p1"]
    assert data["Patient/p1"]["managingOrganization"]


def test_under_sensitive_everything_reachable_goes() -> None:
    data = a_member_reaching_sensitive_shared_data()
    store = Store(data)
    released = release(compartment(data), store, ConsentPolicy.SENSITIVE)
    assert keys(released.resources) == set(data)
    assert released.withheld_count == 0
    # Read level by level: the records' shared resources, then theirs (the makers).
    assert len(store.asked) == 2 and "Organization/arv-maker" in store.asked[1]


def test_a_shared_resource_of_another_member_or_a_missing_one_is_not_reached() -> None:
    data = a_member_reaching_sensitive_shared_data()
    other = {"resourceType": "Condition", "id": "x", "subject": {"reference": "Patient/p2"}}
    records = [*compartment(data), {**data["Patient/p1"], "link": [{"other": {"reference":
               "Patient/p2"}}]}][1:]  # fmt: skip
    store = Store({**data, "Condition/x": other, "Patient/p2": {"resourceType": "Patient"}})
    released = release(records, store, ConsentPolicy.SENSITIVE)
    assert "Patient/p2" not in keys(released.resources)
    assert all(not ref.startswith(("Patient/", "Condition/")) for ask in store.asked
               for ref in ask)  # fmt: skip


def test_under_regular_references_to_other_members_records_go_but_to_a_plain_patient() -> None:
    """Issue 48: a record of this member pointing at another member's Condition (or at
    a record never loaded) loses the reference; one pointing at another Patient that
    says nothing sensitive keeps it; what is kept in the store is not changed."""
    from payerbridge.disclosure.everything import Compartment, ReleaseTerms, plan_everything
    from payerbridge.disclosure.model import EverythingQuery
    from payerbridge.types import MemberId

    patient = {"resourceType": "Patient", "id": "p1"}
    spouse = {"resourceType": "Patient", "id": "p2"}
    theirs = {"resourceType": "Condition", "id": "p2-dx", "subject": {"reference": "Patient/p2"}}
    note = {
        "resourceType": "Observation",
        "id": "o1",
        "subject": {"reference": "Patient/p1"},
        "focus": [
            {"reference": "Condition/p2-dx"},
            {"reference": "Encounter/never-loaded"},
            {"reference": "Patient/p2"},
        ],
    }
    store = Store({"Patient/p2": spouse, "Condition/p2-dx": theirs})
    released = release([patient, note], store, ConsentPolicy.REGULAR)
    [kept] = [r for r in released.records if r["id"] == "o1"]
    assert kept["focus"] == [{"reference": "Patient/p2"}]
    assert len(note["focus"]) == 3  # not changed in place
    plan = plan_everything(
        Compartment(MemberId("p1"), [patient, note]),
        store,
        ReleaseTerms(ConsentPolicy.REGULAR),
        EverythingQuery(),
    )
    assert plan is not None
    assert {"Condition/p2-dx", "Encounter/never-loaded"} <= plan.withheld
    assert "Patient/p2" not in plan.withheld
    assert plan.withheld_count == 0  # not this member's: nothing of its own withheld
    labelled = {**spouse, "meta": {"security": [{"system": "urn:oid:2.16.840.1.113883.5.25",
                                                  "code": "R"}]}}  # fmt: skip
    restricted = release([patient, note], Store({"Patient/p2": labelled}), ConsentPolicy.REGULAR)
    [kept] = [r for r in restricted.records if r["id"] == "o1"]
    assert "focus" not in kept
