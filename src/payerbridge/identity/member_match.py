"""The ``$member-match`` use case (old payer): match the request to one member, decide the
Consent presented with it and keep it if it permits, and say which audit events record
the answer. The FHIR edge parses the request and renders what this returns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.consent.model import ConsentId, PresentedConsent, Requester
from payerbridge.consent.ports import ConsentStore
from payerbridge.consent.segmentation import supported_policies
from payerbridge.consent.service import accept_presented_consent
from payerbridge.errors import ConsentDenied, MatchError
from payerbridge.fhir.member_match import MemberMatchInput
from payerbridge.identity.decision import MatchPolicy
from payerbridge.identity.ports import IdentityIndex, MemberResources
from payerbridge.identity.service import (
    AttemptLimit,
    MatchedMember,
    decision_audit_event,
    match_member,
)
from payerbridge.transactions import Transactions
from payerbridge.types import MemberId

__all__ = ["MemberMatchAnswer", "MemberMatchRules", "answer_member_match"]


@dataclass(frozen=True)
class MemberMatchRules:
    """The deployment's matching policy, brute-force guard, and our NPI (the discloser
    consents name)."""

    policy: MatchPolicy
    attempts: AttemptLimit
    source_npi: str


@dataclass(frozen=True)
class MemberMatchAnswer:
    """The member matched, or why the request is refused (a MatchError, or the consent's
    ConsentDenied: HRex mm-11, no member id goes out), and the audit events to commit
    with the answer."""

    matched: MatchedMember | None
    refusal: MatchError | ConsentDenied | None
    events: list[AuditEvent]


def answer_member_match(
    request: MemberMatchInput,
    presented: PresentedConsent | None,
    *,
    index: IdentityIndex,
    transactions: Transactions,
    consents: ConsentStore,
    members: MemberResources,
    requester: Requester,
    rules: MemberMatchRules,
    at: Callable[[], datetime],
    new_id: Callable[[], str],
    umb_system: str,
    request_id: str | None,
    idempotency_key: str | None,
) -> MemberMatchAnswer:
    """Answer one ``$member-match``. Without an Idempotency-Key the answer's own audit
    events commit with the match's writes (one transaction) and are not returned; with
    one, they are returned to commit with the stored answer."""
    client_id = requester.client_id

    def audit(member_id: str, outcome: str, detail: dict[str, Any]) -> AuditEvent:
        return AuditEvent(
            at=at(),
            actor=client_id,
            action="member-match",
            entity_type="Patient",
            entity_id=member_id,
            outcome=outcome,
            request_id=request_id,
            detail={**detail, "idempotency_key": idempotency_key},
        )

    def answer_audit(answer: MatchedMember | MatchError) -> list[AuditEvent]:
        if isinstance(answer, MatchError):
            return [audit("-", type(answer).__name__, {"decision": answer.decision_id})]
        detail = {"candidates": answer.candidates_considered, "decision": answer.decision_id}
        return [audit(answer.member_id, "match", detail)]

    with_match = idempotency_key is None
    try:
        matched = match_member(
            request,
            index,
            transactions,
            client_id=client_id,
            requester_npi=requester.npi,
            policy=rules.policy,
            attempts=rules.attempts,
            at=at(),
            new_id=new_id,
            umb_system=umb_system,
            audit=lambda decision: decision_audit_event(
                decision, actor=client_id, request_id=request_id
            ),
            answer_audit=answer_audit if with_match else None,
        )
    except MatchError as refused:  # an answer (422), kept and replayed like a match
        return MemberMatchAnswer(None, refused, [] if with_match else answer_audit(refused))
    events: Sequence[AuditEvent] = [] if with_match else answer_audit(matched)
    if presented is None:
        return MemberMatchAnswer(matched, None, list(events))
    return _with_presented_consent(
        matched,
        presented,
        events,
        transactions=transactions,
        consents=consents,
        members=members,
        requester=requester,
        source_npi=rules.source_npi,
        at=at,
        new_id=new_id,
        request_id=request_id,
        idempotency_key=idempotency_key,
    )


def _with_presented_consent(
    matched: MatchedMember,
    presented: PresentedConsent,
    events: Sequence[AuditEvent],
    *,
    transactions: Transactions,
    consents: ConsentStore,
    members: MemberResources,
    requester: Requester,
    source_npi: str,
    at: Callable[[], datetime],
    new_id: Callable[[], str],
    request_id: str | None,
    idempotency_key: str | None,
) -> MemberMatchAnswer:
    """The answer once the Consent presented with the request is decided for the matched
    member, and kept if it permits; one that does not refuses the match (HRex mm-11)."""
    member_id = MemberId(matched.member_id)
    policies = supported_policies(members.resource_types(member_id))
    with transactions.begin() as unit:
        disclosure = accept_presented_consent(
            unit,
            consents,
            presented,
            consent_id=ConsentId(new_id()),
            member_id=member_id,
            requester=requester,
            at=at(),
            source_npi=source_npi,
            supported_policies=policies,
            request_id=request_id,
            detail={"idempotency_key": idempotency_key},
        )
    events = [*events, disclosure.event]
    if not disclosure.decision.permitted:
        try:
            disclosure.require(data_access=False)
        except ConsentDenied as denied:
            return MemberMatchAnswer(None, denied, events)
    return MemberMatchAnswer(matched, None, events)
