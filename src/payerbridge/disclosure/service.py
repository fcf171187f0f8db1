"""``Patient/{id}/$everything``: the compartment, what it references, and our Provenance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payerbridge.consent.model import ConsentPolicy
from payerbridge.consent.segmentation import SegmentationPolicy, segment
from payerbridge.disclosure.ports import MemberRecords
from payerbridge.errors import NotFound
from payerbridge.fhir.provenance import transmitter_provenance
from payerbridge.fhir.resources import COMPARTMENT_FIELD, iter_references
from payerbridge.routing.model import Organization
from payerbridge.timestamps import utc_iso

__all__ = ["EverythingResult", "disclosable", "member_everything"]

DEFAULT_SEGMENTATION = SegmentationPolicy()


# Types outside any compartment that a member's record points at and that PDex lists.
_SHARED_TYPES = frozenset(t for t, f in COMPARTMENT_FIELD.items() if f is None) - {"Patient"}


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

    ``compartment`` is the member's compartment as read (``records.compartment``);
    under a ``regular`` policy sensitive resources, and references to them, are
    withheld before anything else is looked at, so neither the included resources nor
    the Provenance nor ``total`` can hint at them."""
    if not compartment or compartment[0]["resourceType"] != "Patient":
        raise NotFound(f"Patient/{patient_id} does not exist")
    withheld = 0
    if policy is ConsentPolicy.REGULAR:
        result = segment(compartment, segmentation)
        compartment, withheld = result.kept, result.withheld_count
    own = {f"{r['resourceType']}/{r['id']}" for r in compartment}
    shared = sorted(
        {
            ref
            for resource in compartment
            for ref in iter_references(resource)
            if ref not in own and ref.split("/", 1)[0] in _SHARED_TYPES and ref.count("/") == 1
        }
    )
    included = records.read_many(shared)
    transmitter = transmitter_provenance(
        provenance_id,
        [r for r in compartment if r["resourceType"] != "Provenance"],
        transmitter=us,
        recorded=now,
    )
    entries = [_entry(r, fhir_base, "match") for r in compartment]
    entries += [_entry(r, fhir_base, "include") for r in included]
    entries.append(_entry(transmitter, fhir_base, "include"))
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": utc_iso(now),
        "total": len(compartment),
        "link": [{"relation": "self", "url": f"{fhir_base}/Patient/{patient_id}/$everything"}],
        "entry": entries,
    }
    return EverythingResult(bundle, withheld)


def disclosable(
    resources: list[dict[str, Any]],
    policy: ConsentPolicy,
    segmentation: SegmentationPolicy = DEFAULT_SEGMENTATION,
) -> list[dict[str, Any]]:
    """What may leave under ``policy``: everything, or the segmented rest."""
    if policy is ConsentPolicy.SENSITIVE:
        return resources
    return segment(resources, segmentation).kept


def _entry(resource: dict[str, Any], fhir_base: str, mode: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{fhir_base}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": mode},
    }
