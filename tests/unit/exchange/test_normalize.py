from datetime import UTC, datetime

import pytest

from payerbridge.errors import PartnerRejected
from payerbridge.exchange.received.normalize import Receipt, normalize_everything_bundle
from payerbridge.exchange.received.reconcile import Holder
from payerbridge.fhir.completeness import SOURCE_TIMEOUT, Gap, outcome_entry
from payerbridge.fhir.resources import iter_references
from payerbridge.routing.model import Organization
from tests.builders import a_coverage, a_patient


def bundle(*resources: dict) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }


HOLDER = Holder("newplan", "M-1", "1245319599")


def ours(old_ref: str) -> str:
    """Our id of the old payer's ``old_ref`` for ``HOLDER``."""
    return HOLDER.our_id(old_ref)


def run(b: dict, holder: Holder = HOLDER):  # type: ignore[no-untyped-def]
    return normalize_everything_bundle(
        b,
        Receipt(
            holder,
            Organization("Old", "1245319599", "http://old/fhir"),
            Organization("New", "1234567893"),
            datetime(2026, 11, 1, tzinfo=UTC),
            "x1",
        ),
    )


def test_everything_gets_new_ids_and_references_follow() -> None:
    old_provenance = {
        "resourceType": "Provenance",
        "id": "pv",
        "target": [{"reference": "Coverage/c1"}, {"reference": "Patient/p1"}],
    }
    organization = {"resourceType": "Organization", "id": "org1", "name": "Old"}
    result = run(bundle(a_patient(), a_coverage(), organization, old_provenance))
    receipt = HOLDER.receipt_id()
    by_type = {r["resourceType"]: r for r, _ in result.resources if r["id"] != receipt}
    patient = ours("Patient/p1")
    assert result.patient_id == by_type["Patient"]["id"] == patient
    assert by_type["Coverage"]["beneficiary"]["reference"] == f"Patient/{patient}"
    assert (
        by_type["Coverage"]["payor"][0]["reference"] == f"Organization/{ours('Organization/org1')}"
    )
    assert by_type["Provenance"]["target"][0]["reference"] == f"Coverage/{ours('Coverage/c1')}"
    assert by_type["Coverage"]["meta"]["source"] == "http://old/fhir/Coverage/c1"
    assert result.unresolved_references == 0
    assert result.gaps == () and result.conflicts == ()
    mine = next(r for r, _ in result.resources if r["id"] == receipt)
    assert mine["resourceType"] == "Provenance"
    assert {t["reference"] for t in mine["target"]} == {
        f"Patient/{patient}",
        f"Coverage/{ours('Coverage/c1')}",
        f"Organization/{ours('Organization/org1')}",
    }
    assert [a["type"]["coding"][0]["code"] for a in mine["agent"]] == ["transmitter", "custodian"]
    assert all(compartment == patient for _, compartment in result.resources)
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


def test_what_we_cannot_take_and_records_referred_to_but_missing_are_gaps() -> None:
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e404"},  # the member's: missing
        "performer": [{"reference": "Practitioner/dr1"}],  # shared reference data: no gap
    }
    result = run(bundle(a_patient(), observation, {"resourceType": "Basic", "id": "b1"}))
    assert [(g.source, g.types, g.code, g.retry_may_help) for g in result.gaps] == [
        ("received", ("Basic",), "unreceivable", False),
        ("references", ("Encounter",), "unresolved-reference", False),
    ]
    assert result.unresolved_references == 2


def test_the_old_payers_completeness_outcome_is_a_gap_and_not_a_skipped_resource() -> None:
    gap = Gap("claims", ("ExplanationOfBenefit",), SOURCE_TIMEOUT, "no answer in 2 s", True)
    answer = bundle(a_patient(), a_coverage())
    answer["entry"].append(outcome_entry([gap]))
    result = run(answer)
    assert result.gaps == (gap,)
    assert result.skipped == {}
    assert "OperationOutcome" not in result.counts


def test_two_sources_of_one_answer_that_disagree_about_one_identifier_conflict() -> None:
    first = {**a_coverage("c1"), "meta": {"source": "urn:eligibility"}}
    second = {**a_coverage("c2"), "status": "cancelled", "meta": {"source": "urn:claims"}}
    result = run(bundle(a_patient(), first, second))
    (conflict,) = result.conflicts
    assert conflict.resource_type == "Coverage"
    assert conflict.paths == ("status",)
    assert conflict.sources == ("urn:claims", "urn:eligibility")
    assert set(conflict.refs) == {
        f"Coverage/{ours('Coverage/c1')}",
        f"Coverage/{ours('Coverage/c2')}",
    }
    assert "M123" not in str(conflict.to_json())  # the identifier's value is hashed
    # One source saying it twice, or two saying the same, is no conflict.
    same = {**second, "status": "active"}
    assert run(bundle(a_patient(), first, same)).conflicts == ()


def test_the_same_answer_lands_on_the_same_ids_and_another_client_on_others() -> None:
    answer = bundle(a_patient(), a_coverage())
    again = run(answer)
    assert run(answer).refs == again.refs
    other = run(answer, Holder("otherplan", "M-1", "1245319599"))
    assert not other.refs & again.refs
    assert other.patient_id != again.patient_id


def test_a_members_related_person_is_kept_in_her_compartment() -> None:
    """The subscriber of a dependent, as an old payer's 834 gave it (ADR 0058): kept, under
    our id, its patient the member's Patient here."""
    related = {
        "resourceType": "RelatedPerson",
        "id": "rp1",
        "active": True,
        "patient": {"reference": "Patient/p1"},
        "name": [{"family": "RIVERA", "given": ["CARLOS"]}],
    }
    result = run(bundle(a_patient(), a_coverage(), related))
    assert result.skipped == {} and result.gaps == ()
    (kept, compartment), *_ = [
        (r, c) for r, c in result.resources if r["resourceType"] == "RelatedPerson"
    ]
    assert kept["id"] == ours("RelatedPerson/rp1")
    assert kept["patient"]["reference"] == f"Patient/{ours('Patient/p1')}"
    assert compartment == ours("Patient/p1")
    assert kept["name"] == related["name"]
