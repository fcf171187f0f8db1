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
