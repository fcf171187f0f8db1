import itertools
from datetime import UTC, datetime

import pytest

from payerbridge.errors import PartnerRejected
from payerbridge.exchange.normalize import normalize_everything_bundle
from payerbridge.fhir.resources import iter_references
from payerbridge.routing.model import Organization
from tests.builders import a_coverage, a_patient


def bundle(*resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }


def run(b: dict):  # type: ignore[no-untyped-def]
    counter = itertools.count(1)
    return normalize_everything_bundle(
        b,
        new_id=lambda: f"n{next(counter)}",
        received_at=datetime(2026, 11, 1, tzinfo=UTC),
        us=Organization("New", "1234567893"),
        old_payer=Organization("Old", "1245319599", "http://old/fhir"),
        exchange_id="x1",
    )


def test_everything_gets_new_ids_and_references_follow() -> None:
    old_provenance = {
        "resourceType": "Provenance",
        "id": "pv",
        "target": [{"reference": "Coverage/c1"}, {"reference": "Patient/p1"}],
    }
    organization = {"resourceType": "Organization", "id": "org1", "name": "Old"}
    result = run(bundle(a_patient(), a_coverage(), organization, old_provenance))
    by_type = {r["resourceType"]: r for r, _ in result.resources if r["id"] != "n5"}
    assert result.patient_id == by_type["Patient"]["id"] == "n1"
    assert by_type["Coverage"]["beneficiary"]["reference"] == "Patient/n1"
    assert by_type["Coverage"]["payor"][0]["reference"] == "Organization/n3"
    assert by_type["Provenance"]["target"][0]["reference"] == "Coverage/n2"
    assert by_type["Coverage"]["meta"]["source"] == "http://old/fhir/Coverage/c1"
    assert result.unresolved_references == 0
    ours = next(r for r, _ in result.resources if r["id"] == "n5")
    assert ours["resourceType"] == "Provenance"
    assert {t["reference"] for t in ours["target"]} == {
        "Patient/n1",
        "Coverage/n2",
        "Organization/n3",
    }
    assert [a["type"]["coding"][0]["code"] for a in ours["agent"]] == ["transmitter", "custodian"]
    assert all(patient == "n1" for _, patient in result.resources)
    assert not any(
        ref.endswith(("/p1", "/c1")) for r, _ in result.resources for ref in iter_references(r)
    )


def test_a_bundle_without_exactly_one_patient_is_rejected() -> None:
    with pytest.raises(PartnerRejected, match="exactly one"):
        run(bundle(a_coverage()))
    with pytest.raises(PartnerRejected):
        run({"resourceType": "OperationOutcome"})


def test_unsupported_types_are_skipped_and_counted() -> None:
    result = run(bundle(a_patient(), {"resourceType": "Basic", "id": "b1"}))
    assert result.skipped == {"Basic": 1}
