"""Small builders of FHIR resources and exchange requests for tests (synthetic data only)."""

from __future__ import annotations

from typing import Any

MB = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]}


def a_patient(pid: str = "p1", *, family: str = "Garcia", given: str = "Ana",
              birth_date: str = "1980-02-03", gender: str = "female",
              member_id: str | None = "M123") -> dict[str, Any]:
    patient: dict[str, Any] = {"resourceType": "Patient", "id": pid,
                               "name": [{"family": family, "given": [given]}],
                               "birthDate": birth_date, "gender": gender}
    if member_id:
        patient["identifier"] = [{"type": MB, "system": "http://old.example/mb",
                                  "value": member_id}]
    return patient


def a_coverage(cid: str = "c1", *, patient: str = "p1", member_id: str | None = "M123",
               subscriber_id: str = "S1") -> dict[str, Any]:
    coverage: dict[str, Any] = {"resourceType": "Coverage", "id": cid, "status": "active",
                                "subscriberId": subscriber_id,
                                "beneficiary": {"reference": f"Patient/{patient}"},
                                "payor": [{"reference": "Organization/org1"}]}
    if member_id:
        coverage["identifier"] = [{"type": MB, "system": "http://old.example/mb",
                                   "value": member_id}]
    return coverage


def an_exchange_request(old_payer: str = "old-plan", **member: Any) -> dict[str, Any]:
    return {
        "old_payer": old_payer,
        "member": {"given": ["Ana"], "family": "Garcia", "birth_date": "1980-02-03",
                   "gender": "female", **member},
        "old_coverage": {"member_id": "M123", "subscriber_id": "S1", "relationship": "self"},
        "new_coverage": {"member_id": "N1", "relationship": "self", "start": "2026-12-01"},
        "consent": {"policy": "sensitive", "start": "2026-01-01", "end": "2099-01-01",
                    "source_reference": "DocumentReference/optin-1"},
    }
