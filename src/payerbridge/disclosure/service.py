"""``Patient/{id}/$everything``: the compartment, the shared resources it reaches, and our
Provenance, as ``release`` lets them go."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payerbridge.consent.model import ConsentPolicy
from payerbridge.consent.segmentation import SegmentationPolicy
from payerbridge.disclosure.ports import MemberRecords
from payerbridge.disclosure.release import DEFAULT_SEGMENTATION, release
from payerbridge.errors import NotFound
from payerbridge.fhir.provenance import transmitter_provenance
from payerbridge.routing.model import Organization
from payerbridge.timestamps import utc_iso

__all__ = ["EverythingResult", "member_everything"]


@dataclass(frozen=True)
class EverythingResult:
    bundle: dict[str, Any]
    withheld_count: int  # for the audit trail only; the requester never learns it


def member_everything(
    patient_id: str,
    compartment: list[dict[str, Any]],
    records: MemberRecords,
    *,
    policy: ConsentPolicy,
    us: Organization,
    fhir_base: str,
    provenance_id: str,
    now: datetime,
    segmentation: SegmentationPolicy = DEFAULT_SEGMENTATION,
) -> EverythingResult:
    """A searchset Bundle with exactly one Patient (PDex), the member's data first.

    ``compartment`` is the member's compartment as read (``records.compartment``); the
    shared resources it reaches are judged with it, so under a ``regular`` policy
    nothing sensitive goes by reference either, and neither the included resources nor
    the Provenance nor ``total`` can hint at what was withheld."""
    if not compartment or compartment[0]["resourceType"] != "Patient":
        raise NotFound(f"Patient/{patient_id} does not exist")
    released = release(compartment, records, policy, segmentation)
    transmitter = transmitter_provenance(
        provenance_id,
        [r for r in released.resources if r["resourceType"] != "Provenance"],
        transmitter=us,
        recorded=now,
    )
    entries = [_entry(r, fhir_base, "match") for r in released.records]
    entries += [_entry(r, fhir_base, "include") for r in released.shared]
    entries.append(_entry(transmitter, fhir_base, "include"))
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": utc_iso(now),
        "total": len(released.records),
        "link": [{"relation": "self", "url": f"{fhir_base}/Patient/{patient_id}/$everything"}],
        "entry": entries,
    }
    return EverythingResult(bundle, released.withheld_count)


def _entry(resource: dict[str, Any], fhir_base: str, mode: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{fhir_base}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": mode},
    }
