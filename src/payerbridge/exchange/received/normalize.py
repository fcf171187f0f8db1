"""Turning a Bundle received from an old payer into resources of our own (pure).

Every resource gets our id for its source identity (``reconcile.Holder``: the same
resource from the same old payer for the same client's member gets the same id on every
exchange) and every reference among them is rewritten; the old payer's Provenance is kept
(re-targeted) and we add ours, recording that the data was received from the old payer
(the transmitter) and is now in our custody. What the answer lacked (the old payer's
completeness OperationOutcome, resources we could not take, references to resources it
did not carry) is kept as gaps, and what two of its sources said differently as conflicts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payerbridge.errors import PartnerRejected
from payerbridge.exchange.received.reconcile import Conflict, Holder, conflicts_within
from payerbridge.fhir.completeness import Gap, gaps_of, is_outcome_entry
from payerbridge.fhir.provenance import Custody, receipt_provenance
from payerbridge.fhir.resources import (
    COMPARTMENT_FIELD,
    ID_PATTERN,
    SUPPORTED_TYPES,
    compartment_patient,
    rewrite_references,
)
from payerbridge.routing.model import Organization
from payerbridge.types import ExchangeId

__all__ = [
    "NormalizedBundle",
    "Receipt",
    "as_ours",
    "normalize_everything_bundle",
    "receivable_ref",
]


# Where a gap that is not the old payer's own word comes from.
RECEIVED = "received"  # resources in the answer we could not take
REFERENCES = "references"  # references to resources the answer did not carry
UNRECEIVABLE = "unreceivable"
UNRESOLVED_REFERENCE = "unresolved-reference"
_RELATIVE_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}$")
# The types of the member's own record: a reference to one the answer did not carry is a
# gap. Shared reference data (Organization, Practitioner, …) and other people's Patients
# an answer need not carry.
_RECORD_TYPES = frozenset(
    kind for kind, field in COMPARTMENT_FIELD.items() if field is not None and kind != "Provenance"
)


@dataclass(frozen=True)
class NormalizedBundle:
    resources: list[tuple[dict[str, Any], str | None]]  # (resource, compartment patient id)
    patient_id: str
    counts: Counter[str]
    skipped: Counter[str]
    unresolved_references: int
    gaps: tuple[Gap, ...] = ()  # what the answer lacked
    conflicts: tuple[Conflict, ...] = ()  # what two of its sources said differently

    @property
    def refs(self) -> set[str]:
        """Our ``Type/id`` of every resource to store."""
        return {f"{r['resourceType']}/{r['id']}" for r, _ in self.resources}


def _entries(bundle: Any) -> tuple[list[dict[str, Any]], list[Gap]]:
    """The resources an answer carries, and the gaps its OperationOutcome entries declare."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise PartnerRejected("the partner's $everything response is not a Bundle")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise PartnerRejected("the partner's Bundle.entry is not an array")
    resources = []
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            raise PartnerRejected("a Bundle entry from the partner carries no resource")
        if not is_outcome_entry(entry):
            resources.append(resource)
    return resources, gaps_of(bundle)


def receivable_ref(resource: dict[str, Any]) -> str | None:
    """The ``Type/id`` of a received resource we can keep; None for a type we do not hold
    or an id that is not a FHIR id."""
    resource_type, resource_id = resource.get("resourceType"), resource.get("id")
    if (
        resource_type not in SUPPORTED_TYPES
        or not isinstance(resource_id, str)
        or not ID_PATTERN.match(resource_id)
    ):
        return None
    return f"{resource_type}/{resource_id}"


def as_ours(
    resource: dict[str, Any],
    id_map: dict[str, str],
    rewrite: Callable[[str], str],
    old_payer: Organization,
) -> dict[str, Any]:
    """A received resource under the id ``id_map`` gives it, its references passed
    through ``rewrite``, its meta ours but for ``source``: where the old payer kept it."""
    old_ref = f"{resource['resourceType']}/{resource['id']}"
    copy: dict[str, Any] = rewrite_references(resource, rewrite)
    copy["id"] = id_map[old_ref].split("/", 1)[1]
    meta = {
        k: v
        for k, v in (copy.get("meta") or {}).items()
        if k not in ("versionId", "lastUpdated", "source")
    }
    if old_payer.fhir_base:
        meta["source"] = f"{old_payer.fhir_base}/{old_ref}"
    copy["meta"] = meta
    return copy


@dataclass(frozen=True)
class Receipt:
    """An old payer's answer as we receive it: for whom we hold it, from which old payer,
    by whom (``us``), when, and in which exchange."""

    holder: Holder
    old_payer: Organization
    us: Organization
    received_at: datetime
    exchange_id: ExchangeId


def normalize_everything_bundle(bundle: Any, receipt: Receipt) -> NormalizedBundle:
    """The answer under our ids for the receipt's holder, with our receipt Provenance, its
    gaps and the conflicts among its sources."""
    holder, old_payer = receipt.holder, receipt.old_payer
    resources, declared = _entries(bundle)
    skipped: Counter[str] = Counter()
    id_map: dict[str, str] = {}
    kept = []
    for resource in resources:
        old_ref = receivable_ref(resource)
        if old_ref is None:
            skipped[str(resource.get("resourceType"))] += 1
            continue
        if old_ref in id_map:
            continue  # the same resource twice (match and include): keep one
        id_map[old_ref] = f"{resource['resourceType']}/{holder.our_id(old_ref)}"
        kept.append(resource)
    patients = [r for r in kept if r["resourceType"] == "Patient"]
    if len(patients) != 1:
        raise PartnerRejected(
            f"the partner's $everything Bundle holds {len(patients)} Patients; exactly one expected"
        )

    unresolved = 0
    missing: Counter[str] = Counter()  # relative references left unresolved, by type

    def rewrite(reference: str) -> str:
        nonlocal unresolved
        if reference in id_map:
            return id_map[reference]
        if not reference.startswith("#"):
            unresolved += 1
            relative = _RELATIVE_REFERENCE.match(reference)
            if relative and relative.group(1) in _RECORD_TYPES:
                missing[relative.group(1)] += 1
        return reference

    normalized = [as_ours(resource, id_map, rewrite, old_payer) for resource in kept]
    conflicts = conflicts_within([(id_map[_ref_of(r)], r) for r in kept])

    patient_id = id_map[f"Patient/{patients[0]['id']}"].split("/", 1)[1]
    normalized.append(
        receipt_provenance(
            holder.receipt_id(),
            [r for r in normalized if r["resourceType"] != "Provenance"],
            Custody(transmitter=old_payer, custodian=receipt.us, recorded=receipt.received_at),
            receipt.exchange_id,
        )
    )
    counts = Counter(r["resourceType"] for r in normalized)
    return NormalizedBundle(
        resources=[(r, compartment_patient(r) or patient_id) for r in normalized],
        patient_id=patient_id,
        counts=counts,
        skipped=skipped,
        unresolved_references=unresolved,
        gaps=(*declared, *_our_gaps(skipped, missing)),
        conflicts=tuple(conflicts),
    )


def _ref_of(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _our_gaps(skipped: Counter[str], missing: Counter[str]) -> list[Gap]:
    """The gaps we found ourselves: resources we could not take, and resources referred
    to that the answer did not carry (asking again gives the same answer)."""
    gaps = []
    if skipped:
        text = (
            f"{sum(skipped.values())} resource(s) of a type we do not keep, or without a "
            "valid id, were left out"
        )
        gaps.append(Gap(RECEIVED, tuple(sorted(skipped)), UNRECEIVABLE, text, False))
    if missing:
        text = (
            f"{sum(missing.values())} reference(s) to records of the member the answer did "
            "not carry"
        )
        gaps.append(Gap(REFERENCES, tuple(sorted(missing)), UNRESOLVED_REFERENCE, text, False))
    return gaps
