"""The member's one Patient at the plan and its sources' Patients, read for one old
payer's data about a member (ADR 0054): shared by an exchange's answer
(``exchange.steps.one_patient``) and each member of an onboarding's export
(``onboarding.one_patient``), so both choose, keep and compare alike. Read before the
commit that stores the data (a unit's thread gets no second connection, ADR 0008)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from payerbridge.exchange.ports import HeldFor
from payerbridge.exchange.received.merge import (
    Difference,
    MemberChoice,
    MemberFacts,
    choose_member_patient,
    demographic_differences,
    identity_conflicts,
    member_record,
)
from payerbridge.exchange.received.reconcile import Conflict, Holder
from payerbridge.fhir.member_match import member_id_system
from payerbridge.fhir.resources import is_member_record
from payerbridge.routing.model import Organization

__all__ = [
    "PLAN",
    "MemberSources",
    "choose_for_member",
    "differences_among",
    "sources_patients",
]

PLAN = "plan"  # the plan's own Patient, among the sources compared


class MemberSources(Protocol):
    """What is read of the member's sources (``exchange.ports.ReceivedStore`` does)."""

    def plan_patients(self, member_id: str) -> list[dict[str, Any]]: ...

    def source_patients(
        self, patient_ids: Sequence[str], *, other_than: HeldFor
    ) -> list[tuple[str, dict[str, Any]]]: ...


def choose_for_member(
    received: MemberSources, holder: Holder, facts: MemberFacts, us: Organization
) -> tuple[MemberChoice, dict[str, Any] | None]:
    """The member's one Patient (``choose_member_patient`` over the plan's own Patients
    carrying the member id) and, unless it is the plan's, our Patient for the member."""
    found = received.plan_patients(facts.member_id) if facts.member_id else []
    choice = choose_member_patient(holder, facts, found)
    ours = None if choice.is_plan else member_record(choice, facts, member_id_system(us))
    return choice, ours


def sources_patients(
    received: MemberSources,
    answer_patients: Iterable[Mapping[str, Any]],
    choice: MemberChoice,
    compartments: Sequence[str],
    held_for: HeldFor,
) -> list[tuple[str, Mapping[str, Any]]]:
    """The sources' Patients for the member, by source (partner id, or ``plan``): this
    old payer's (``answer_patients``), the other old payers' its exchanges stored in the
    ``compartments``, the plan's own."""
    ours = [(held_for.partner_id, p) for p in answer_patients]
    others = received.source_patients(compartments, other_than=held_for)
    plan = [(PLAN, choice.plan_patient)] if choice.plan_patient is not None else []
    return [*ours, *[(s, p) for s, p in others if not is_member_record(p)], *plan]


def differences_among(
    patients: Sequence[tuple[str, Mapping[str, Any]]], member_key: str
) -> tuple[list[Difference], list[Conflict]]:
    """Where the sources' Patients differ, and those differences that may mean another
    person (birth date, gender) as conflicts about the member."""
    differences = demographic_differences(patients)
    refs: dict[str, str] = {}
    for source, patient in patients:  # the first of each source, as compared
        refs.setdefault(source, f"Patient/{patient['id']}")
    return differences, identity_conflicts(differences, refs, member_key)
