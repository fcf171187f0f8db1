"""An old payer's answer kept under the member's one Patient at the plan (ADR 0054): the
plan's own Patient when exactly one carries the member id and agrees on birth date and
gender, else ours for the member; with what the other sources hold about the member,
read before the commit that stores the answer (a unit's thread gets no second
connection, ADR 0008): the conflicts of business identifiers and the demographic
differences between the sources' Patients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from payerbridge.exchange.model import ExchangeRecord
from payerbridge.exchange.ports import HeldFor
from payerbridge.exchange.received.member_sources import (
    PLAN,
    choose_for_member,
    differences_among,
    sources_patients,
)
from payerbridge.exchange.received.merge import (
    Difference,
    MemberChoice,
    MemberFacts,
    member_patient_id,
    merged,
)
from payerbridge.exchange.received.normalize import NormalizedBundle
from payerbridge.exchange.received.reconcile import (
    Conflict,
    Holder,
    conflicts_with_held,
    identifier_keys,
)
from payerbridge.exchange.requests import request_from_document
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.routing.model import Partner

__all__ = ["PLAN", "OnePatient", "under_one_patient"]


@dataclass(frozen=True)
class OnePatient:
    """The answer under the member's one Patient, whose source it is (``held_for``), how
    the Patient was chosen, and where the answer disagrees with the other sources;
    ``kept_always``: our Patient for the member, which no source's complete answer
    removes (every source points to it)."""

    normalized: NormalizedBundle
    held_for: HeldFor
    choice: MemberChoice
    conflicts: tuple[Conflict, ...]  # identifiers elsewhere, and identity differences
    differences: tuple[Difference, ...]
    kept_always: str


def under_one_patient(
    uow: ExchangeUnit,
    record: ExchangeRecord,
    partner: Partner,
    holder: Holder,
    normalized: NormalizedBundle,
) -> OnePatient:
    """The answer re-pointed to the member's one Patient, with the other sources read."""
    request = request_from_document(record.request)
    facts = MemberFacts(
        holder.member_id, request.member.birth_date.isoformat(), request.member.gender
    )
    choice, ours = choose_for_member(uow.received, holder, facts, uow.us)
    kept = merged(normalized, choice, ours)
    held_for = HeldFor(record.client_id, holder.member_key, partner.id)
    others = uow.exchanges.compartments_held(
        record.client_id, holder.member_key, other_than=choice.patient_id
    )
    compartments = sorted({choice.patient_id, *others})
    elsewhere = _identifier_conflicts(uow, kept, compartments, held_for)
    answer_patients = [
        r
        for r, _ in kept.resources
        if r["resourceType"] == "Patient" and r.get("id") == kept.patient_id
    ]
    patients = sources_patients(uow.received, answer_patients, choice, compartments, held_for)
    differences, identity = differences_among(patients, holder.member_key)
    return OnePatient(
        kept,
        held_for,
        choice,
        (*elsewhere, *identity),
        tuple(differences),
        f"Patient/{member_patient_id(holder, ())[0]}",
    )


def _identifier_conflicts(
    uow: ExchangeUnit, kept: NormalizedBundle, compartments: Sequence[str], held_for: HeldFor
) -> list[Conflict]:
    """Where the answer's business identifiers say differently from what the member's
    other sources (the plan's own data among them) hold. Patients are compared as
    demographics instead (``sources_patients``): the same SSN with a new address is a move."""
    resources = [r for r, _ in kept.resources if r["resourceType"] != "Patient"]
    keys = sorted({k for r in resources for k in identifier_keys(r)})
    if not keys:
        return []
    held = uow.received.with_identifiers(compartments, keys, other_than=held_for)
    return conflicts_with_held(resources, [r for r in held if r["resourceType"] != "Patient"])
