"""The sandbox FHIR server as a destination: transactions all or nothing, conditional
updates by identifier, the references FHIR says a transaction resolves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from payerbridge.delivery.bundle import plan_transactions
from payerbridge.fhir.resources import iter_references
from payerbridge_tools.sandbox.fhir_written import TransactionRefused, WrittenStore

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def _record() -> list[dict[str, Any]]:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "urn:member|ids", "value": "A,1"}],
    }
    coverage = {
        "resourceType": "Coverage",
        "id": "c1",
        "identifier": [{"system": "urn:cov", "value": "C1"}],
        "beneficiary": {"reference": "Patient/p1"},
    }
    provenance = {
        "resourceType": "Provenance",
        "id": "v1",
        "target": [{"reference": "Patient/p1"}, {"reference": "Coverage/c1"}],
    }
    return [patient, coverage, provenance]


def _resolves(store: WrittenStore) -> None:
    for resource in store.resources.values():
        for reference in iter_references(resource):
            kind, rid = reference.split("/")
            assert (kind, rid) in store.resources, reference


@pytest.mark.parametrize("max_entries", [1, 2, 10])
def test_a_record_is_written_once_however_it_is_cut(max_entries: int) -> None:
    store = WrittenStore()
    for transaction in plan_transactions(_record(), max_entries=max_entries):
        store.transact(transaction.as_bundle(), NOW)
    assert store.summary()["types"] == {"Coverage": 1, "Patient": 1, "Provenance": 1}
    _resolves(store)
    assert ("Provenance", "v1") in store.resources  # PUT Type/id keeps our id
    # Written again: updated in place (one match each), one more version each.
    for transaction in plan_transactions(_record(), max_entries=max_entries):
        store.transact(transaction.as_bundle(), NOW)
    assert store.summary()["types"] == {"Coverage": 1, "Patient": 1, "Provenance": 1}
    assert store.summary()["versions"] == {"Coverage": 2, "Patient": 2, "Provenance": 2}
    _resolves(store)


def test_several_matches_refuse_the_whole_transaction() -> None:
    store = WrittenStore()
    twin = {"resourceType": "Coverage", "identifier": [{"system": "urn:cov", "value": "C1"}]}
    store.resources[("Coverage", "x")] = {**twin, "id": "x"}
    store.resources[("Coverage", "y")] = {**twin, "id": "y"}
    (transaction,) = plan_transactions(_record())
    with pytest.raises(TransactionRefused) as refused:
        store.transact(transaction.as_bundle(), NOW)
    assert refused.value.status == 412
    assert sorted(store.resources) == [("Coverage", "x"), ("Coverage", "y")]  # nothing else


def test_a_conditional_reference_to_nothing_refuses_it() -> None:
    store = WrittenStore()
    orphan = {
        "resourceType": "Provenance",
        "id": "v2",
        "target": [{"reference": "Patient?identifier=urn%3Ax|1"}],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": orphan, "request": {"method": "PUT", "url": "Provenance/v2"}}],
    }
    with pytest.raises(TransactionRefused) as refused:
        store.transact(bundle, NOW)
    assert refused.value.status == 412 and not store.resources


def _bundle(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


_MEMBER = "identifier=urn%3Aplan|M1&birthdate=2024-12-31"


def _create_member(claim_refers_to: str = "urn:uuid:m") -> dict[str, Any]:
    member = {"resourceType": "Patient", "identifier": [{"system": "urn:plan", "value": "M1"}]}
    member["birthDate"] = "2024-12-31"
    claim = {"resourceType": "Claim", "id": "c1", "patient": {"reference": claim_refers_to}}
    return _bundle(
        {
            "fullUrl": "urn:uuid:m",
            "resource": member,
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": _MEMBER},
        },
        {
            "fullUrl": "urn:uuid:c",
            "resource": claim,
            "request": {"method": "PUT", "url": "Claim/c1"},
        },
    )


def test_a_conditional_create_uses_the_one_who_agrees_and_makes_her_when_none_does() -> None:
    store = WrittenStore()
    sister = {
        "resourceType": "Patient",
        "id": "sister",
        "identifier": [{"system": "urn:plan", "value": "M1"}],
        "birthDate": "2019-05-01",
    }
    store.served = lambda kind: [sister] if kind == "Patient" else []
    store.transact(_create_member(), NOW)  # the sister's card, another birth date: a new one
    (made,) = [rid for (kind, rid) in store.resources if kind == "Patient"]
    assert made != "sister" and store.resources[("Claim", "c1")]["patient"] == {
        "reference": f"Patient/{made}"
    }
    store.transact(_create_member(f"Patient?{_MEMBER}"), NOW)  # found: nothing new written
    assert store.summary()["versions"] == {"Claim": 2, "Patient": 1}
    newborn = store.resources[("Patient", made)]
    store.served = lambda kind: [sister, {**newborn, "id": "twin"}] if kind == "Patient" else []
    with pytest.raises(TransactionRefused) as refused:  # two agree: none is guessed
        store.transact(_create_member(), NOW)
    assert refused.value.status == 412


def test_a_reference_to_a_resource_the_server_lacks_refuses_the_transaction() -> None:
    store = WrittenStore()
    claim = {"resourceType": "Claim", "id": "c1", "patient": {"reference": "Patient/nobody"}}
    request = {"method": "PUT", "url": "Claim/c1"}
    with pytest.raises(TransactionRefused) as refused:
        store.transact(_bundle({"resource": claim, "request": request}), NOW)
    assert refused.value.status == 400 and not store.resources
    store.serves = lambda kind, rid: (kind, rid) == ("Patient", "nobody")  # served besides
    store.transact(_bundle({"resource": claim, "request": request}), NOW)
    assert ("Claim", "c1") in store.resources
