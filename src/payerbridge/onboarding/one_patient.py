"""Each onboarded member's records kept under the member's one Patient at the plan
(ADR 0054), as an exchange's answer is: the plan's own Patient when exactly one carries
the member id and agrees on birth date and gender, else ours for the member (its id from
the member key, so an exchange and an onboarding of the member share one compartment).
The old payer's Patient stays a source record linked ``seealso``; references to it point
to the one Patient. The choice, the keeping and the comparison are the exchange's own
(``exchange.received.member_sources``, ``merge.kept_under``); this module only splits an
export by member. Read before the commit that stores the export (ADR 0008)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from payerbridge.exchange.ports import HeldFor
from payerbridge.exchange.received.member_sources import (
    MemberSources,
    choose_for_member,
    differences_among,
    sources_patients,
)
from payerbridge.exchange.received.merge import MemberChoice, MemberFacts, kept_under
from payerbridge.exchange.received.reconcile import Holder
from payerbridge.onboarding.importing import NormalizedExport
from payerbridge.onboarding.model import MemberPatient
from payerbridge.routing.model import Organization
from payerbridge.types import PartnerId

__all__ = ["ImportedMember", "member_facts", "under_member_patients", "under_one_patients"]

Resource = dict[str, Any]
Kept = list[tuple[Resource, str | None]]


@dataclass(frozen=True)
class ImportedMember:
    """A member whose records an export brought: its position in the run, whom its data
    is held for, what the plan said of it, and the old payer's Patient id for it."""

    position: int
    holder: Holder
    facts: MemberFacts
    old_patient: str

    @property
    def source_patient_id(self) -> str:
        """Our id of the old payer's Patient (ADR 0029), as ``normalize_export`` gives it."""
        return self.holder.our_id(f"Patient/{self.old_patient}")


def member_facts(member_id: str, bundle: Mapping[str, Any]) -> MemberFacts:
    """What the plan said of its member: the member id on the new card, and the birth
    date and gender of the MemberPatient it submitted (built from its request)."""
    patient: Mapping[str, Any] = {}
    for part in bundle.get("part") or ():
        if (
            isinstance(part, dict)
            and part.get("name") == "MemberPatient"
            and isinstance(part.get("resource"), dict)
        ):
            patient = part["resource"]
    birth_date, gender = patient.get("birthDate"), patient.get("gender")
    return MemberFacts(
        member_id,
        birth_date if isinstance(birth_date, str) else "",
        gender if isinstance(gender, str) else None,
    )


def under_member_patients(
    resources: Iterable[tuple[Resource, str | None]],
    chosen: Mapping[str, tuple[MemberChoice, Resource | None]],
) -> Kept:
    """An export's resources with each member's share (its compartment is our id of the
    old payer's Patient, a key of ``chosen``) kept under its one Patient, and our Patient
    for the member beside them where the plan has none; shared resources as they are."""
    shared: Kept = []
    by_member: dict[str, Kept] = {}
    for resource, compartment in resources:
        if compartment is not None and compartment in chosen:
            by_member.setdefault(compartment, []).append((resource, compartment))
        else:
            shared.append((resource, compartment))
    for source_patient_id, share in by_member.items():
        choice, record = chosen[source_patient_id]
        shared.extend(kept_under(share, source_patient_id, choice, record))
    return shared


def under_one_patients(
    received: MemberSources,
    us: Organization,
    export: NormalizedExport,
    members: Sequence[ImportedMember],
    partner_id: PartnerId,
) -> tuple[Kept, dict[int, MemberPatient]]:
    """The export under each member's one Patient, and how each member's was chosen with
    where its sources' Patients differ (read now, before the unit that stores it)."""
    chosen: dict[str, tuple[MemberChoice, Resource | None]] = {}
    outcomes: dict[int, MemberPatient] = {}
    sources = {r.get("id"): r for r, _ in export.resources if r["resourceType"] == "Patient"}
    for member in members:
        if not export.per_member.get(member.position):
            continue  # nothing of it came: nothing to keep, no Patient to choose
        source_id = member.source_patient_id
        choice, ours = choose_for_member(received, member.holder, member.facts, us)
        chosen[source_id] = (choice, ours)
        patients = [sources[source_id]] if source_id in sources else []
        held_for = HeldFor(member.holder.client_id, member.holder.member_key, partner_id)
        compared = sources_patients(received, patients, choice, [choice.patient_id], held_for)
        differences, _ = differences_among(compared, member.holder.member_key)
        outcomes[member.position] = MemberPatient(
            f"Patient/{choice.patient_id}",
            choice.how,
            tuple(difference.to_json() for difference in differences),
        )
    return under_member_patients(export.resources, chosen), outcomes
