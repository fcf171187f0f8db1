"""Turning an old payer's bulk export into resources of our own (pure), as
``exchange.received.normalize`` turns one member's ``$everything``: every resource gets our id for
its source identity (``reconcile.Holder``: the member's resources the ids an exchange of
the member gives them, a shared one an id of the client and old payer), so a later run,
an incremental one above all, updates what an earlier one stored rather than adding a
copy; every reference among them is rewritten, the old payer's Provenance is kept
(re-targeted, with the member whose records it is about), and each member gets our
receipt Provenance for what arrived for it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payerbridge.consent.segmentation import references_at
from payerbridge.exchange.received.normalize import as_ours, receivable_ref
from payerbridge.exchange.received.reconcile import Holder
from payerbridge.fhir.provenance import Custody, receipt_provenance
from payerbridge.fhir.resources import compartment_patient
from payerbridge.routing.model import Organization

__all__ = ["ExportMember", "NormalizedExport", "Receipt", "normalize_export"]

Resource = dict[str, Any]


@dataclass(frozen=True)
class ExportMember:
    """A member we asked the old payer about: its position in the run, and whom its data
    is held for."""

    position: int
    holder: Holder


@dataclass(frozen=True)
class NormalizedExport:
    resources: list[tuple[Resource, str | None]]  # (resource, compartment patient id)
    per_member: dict[int, int]  # resources stored per member position (Provenance included)
    skipped: Counter[str]  # resources we could not take, by type
    strangers: int  # resources of Patients we did not ask about: dropped


@dataclass(frozen=True)
class Receipt:
    """How an export is received: from ``old_payer`` by ``us`` at ``received_at``, in run
    ``run_id``; ``new_id`` names our receipt Provenance (one per member and run)."""

    run_id: str
    received_at: datetime
    us: Organization
    old_payer: Organization
    new_id: Callable[[], str]


def normalize_export(
    resources: Iterable[Resource],
    *,
    members: Mapping[str, ExportMember],
    shared: Holder,
    receipt: Receipt,
) -> NormalizedExport:
    """``members``: the old payer's Patient id of each member we asked about, to the
    member. A resource in another Patient's compartment is dropped (the old payer should
    not have sent it); shared resources (no compartment) are kept, under ``shared``'s
    ids; each member's resources get our receipt Provenance."""
    old_payer = receipt.old_payer
    skipped: Counter[str] = Counter()
    id_map: dict[str, str] = {}
    kept: list[Resource] = []
    strangers = 0
    for resource in resources:
        old_ref = receivable_ref(resource)
        if old_ref is None:
            skipped[str(resource.get("resourceType"))] += 1
            continue
        owner = compartment_patient(resource)
        if owner is not None and owner not in members:
            strangers += 1
            continue
        if old_ref in id_map:
            continue  # the same resource twice (two members reach it): keep one
        holder = members[owner].holder if owner is not None else shared
        id_map[old_ref] = f"{resource['resourceType']}/{holder.our_id(old_ref)}"
        kept.append(resource)

    def rewrite(reference: str) -> str:
        return id_map.get(reference, reference)

    owners = {
        f"{r['resourceType']}/{r['id']}": compartment_patient(r)
        for r in kept
        if r["resourceType"] != "Provenance"
    }
    normalized: list[tuple[Resource, str | None, int | None]] = []
    for resource in kept:
        owner = compartment_patient(resource)
        if resource["resourceType"] == "Provenance":  # with the member its targets are of
            owner = next(
                (owners[t] for t in references_at(resource, ("target",)) if owners.get(t)), None
            )
        copy = as_ours(resource, id_map, rewrite, old_payer)
        position = members[owner].position if owner is not None else None
        normalized.append((copy, _new_patient(id_map, owner), position))

    by_member: dict[int, list[Resource]] = {}
    for resource, _, position in normalized:
        if position is not None:
            by_member.setdefault(position, []).append(resource)
    stored: list[tuple[Resource, str | None]] = [(r, patient) for r, patient, _ in normalized]
    custody = Custody(transmitter=old_payer, custodian=receipt.us, recorded=receipt.received_at)
    per_member: dict[int, int] = {}
    for position, own in sorted(by_member.items()):
        patient = next((r for r in own if r["resourceType"] == "Patient"), None)
        received = [r for r in own if r["resourceType"] != "Provenance"]
        if received:
            provenance = receipt_provenance(receipt.new_id(), received, custody, receipt.run_id)
            stored.append((provenance, patient["id"] if patient else None))
        per_member[position] = len(own) + (1 if received else 0)
    return NormalizedExport(stored, per_member, skipped, strangers)


def _new_patient(id_map: Mapping[str, str], owner: str | None) -> str | None:
    if owner is None:
        return None
    new = id_map.get(f"Patient/{owner}")
    return new.split("/", 1)[1] if new else None
