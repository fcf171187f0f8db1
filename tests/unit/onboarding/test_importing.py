"""An old payer's export made ours: our ids for its source identity, references rewritten,
strangers dropped, the old payer's Provenance kept and our receipt per member."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count

from payerbridge.exchange.received.reconcile import Holder
from payerbridge.onboarding.importing import (
    ExportMember,
    NormalizedExport,
    Receipt,
    normalize_export,
)
from payerbridge.routing.model import Organization
from tests.builders import a_coverage, a_patient

US = Organization("New Plan", "1234567893", "https://new.example/fhir")
OLD = Organization("Old Plan", "1245319599", "https://old.example/fhir")


def export() -> list[dict[str, object]]:
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "recorder": {"reference": "Practitioner/doc"},
    }
    stranger = {"resourceType": "Condition", "id": "c9", "subject": {"reference": "Patient/p9"}}
    provenance = {
        "resourceType": "Provenance",
        "id": "prov",
        "target": [{"reference": "Condition/c1"}],
        "recorded": "2024-01-01T00:00:00Z",
        "agent": [{"who": {"reference": "Practitioner/doc"}}],
    }
    return [
        a_patient("p1"),
        a_coverage("cov1", patient="p1"),
        condition,
        stranger,
        {"resourceType": "Practitioner", "id": "doc"},
        {"resourceType": "Practitioner", "id": "doc"},  # reached by two members: once
        provenance,
        {"resourceType": "Spaceship", "id": "x"},
    ]


MEMBER = Holder("plan-client", "N-1", OLD.npi)
SHARED = Holder("plan-client", "", OLD.npi)


def made_ours(run_id: str = "run-1") -> NormalizedExport:
    ids = count()
    return normalize_export(
        export(),
        members={"p1": ExportMember(3, MEMBER)},
        shared=SHARED,
        receipt=Receipt(
            run_id=run_id,
            received_at=datetime(2027, 1, 2, tzinfo=UTC),
            us=US,
            old_payer=OLD,
            new_id=lambda: f"{run_id}-n{next(ids)}",
        ),
    )


def test_the_export_is_stored_under_our_ids_with_a_receipt_per_member() -> None:
    normalized = made_ours()
    stored = {f"{r['resourceType']}/{r['id']}": (r, owner) for r, owner in normalized.resources}
    by_source = {r["meta"].get("source"): r for r, _ in stored.values()}
    patient = by_source["https://old.example/fhir/Patient/p1"]
    condition = by_source["https://old.example/fhir/Condition/c1"]
    doctor = by_source["https://old.example/fhir/Practitioner/doc"]
    assert condition["subject"]["reference"] == f"Patient/{patient['id']}"
    assert condition["recorder"]["reference"] == f"Practitioner/{doctor['id']}"
    kept = by_source["https://old.example/fhir/Provenance/prov"]
    assert kept["target"] == [{"reference": f"Condition/{condition['id']}"}]
    assert stored[f"Condition/{condition['id']}"][1] == patient["id"]
    assert stored[f"Practitioner/{doctor['id']}"][1] is None  # shared: no compartment
    assert normalized.strangers == 1 and normalized.skipped == {"Spaceship": 1}
    [receipt] = [r for r, _ in normalized.resources if "source" not in r["meta"]]
    assert {t["reference"] for t in receipt["target"]} == {
        f"Patient/{patient['id']}",
        f"Coverage/{by_source['https://old.example/fhir/Coverage/cov1']['id']}",
        f"Condition/{condition['id']}",
    }
    # The member's own resources and its receipt: Patient, Coverage, Condition, Provenance x2.
    assert normalized.per_member == {3: 5}
    assert len(normalized.resources) == 6  # and the doctor
    assert stored[f"Provenance/{kept['id']}"][1] == patient["id"]  # with what it is about


def test_a_later_run_updates_what_an_earlier_one_stored_rather_than_adding_a_copy() -> None:
    first, second = made_ours("run-1"), made_ours("run-2")
    refs = [{f"{r['resourceType']}/{r['id']}" for r, _ in run.resources} for run in (first, second)]
    # Everything but our receipt (one per member and run) keeps its id.
    assert len(refs[0] - refs[1]) == 1 and len(refs[0] & refs[1]) == 5
    # The member's resources under the ids an exchange of the member gives them.
    by_source = {r["meta"].get("source"): r for r, _ in first.resources}
    assert by_source["https://old.example/fhir/Patient/p1"]["id"] == MEMBER.our_id("Patient/p1")
    doctor = by_source["https://old.example/fhir/Practitioner/doc"]
    assert doctor["id"] == SHARED.our_id("Practitioner/doc")
