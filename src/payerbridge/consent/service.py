"""Consent use cases: keep what was presented or captured, decide at every hop, revoke.

The decision itself is ``policy.evaluate`` (pure). These functions look the consents
up, decide, and return the audit event that records the decision, so that the caller
writes it with whatever the decision let happen. ``authorize_disclosure`` is the one
check the data holder makes for ``$everything``, reads and searches (and, later, for
member-scoped tokens); ``authorize_request`` is the requester's check before each
outbound call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.consent.model import (
    AcceptPresentedConsent,
    ConsentDecision,
    ConsentId,
    ConsentPolicy,
    ConsentRequest,
    ConsentRole,
    DenyReason,
    DisclosureRequest,
    Hop,
    OutboundRequest,
    Purpose,
    RevokeConsent,
    StoredConsent,
    is_own_organization,
)
from payerbridge.consent.policy import decide_among, evaluate
from payerbridge.consent.ports import ConsentReader, ConsentStore
from payerbridge.errors import ConsentDenied, DisclosureDenied, Issue
from payerbridge.transactions import UnitOfWork
from payerbridge.types import MemberId

__all__ = [
    "OWN_RECORDS_PURPOSE",
    "Disclosure",
    "accept_presented_consent",
    "authorize_disclosure",
    "authorize_request",
    "consent_recorded",
    "own_records",
    "decision_event",
    "opt_in_decision_event",
    "record_consent",
    "revoke_consent",
]


@dataclass(frozen=True)
class Disclosure:
    """One consent decision at one hop, with the audit event that records it."""

    decision: ConsentDecision
    consent_id: ConsentId | None
    event: AuditEvent

    def require(self, *, data_access: bool) -> ConsentPolicy:
        """The effective policy, or ConsentDenied (422, ``$member-match``) /
        DisclosureDenied (403, data access) carrying the reason."""
        decision = self.decision
        if decision.permitted and decision.policy is not None:
            return decision.policy
        assert decision.reason is not None
        error = DisclosureDenied if data_access else ConsentDenied
        expression = "Consent" if not data_access else None
        raise error(
            decision.text,
            reason=decision.reason.value,
            issues=[Issue(decision.text, expression)],
        )


def decision_event(
    decision: ConsentDecision,
    hop: Hop,
    *,
    consent_id: str | None,
    member_id: MemberId,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """``consent.decision``: the outcome, the reason code and the policy version (ids only),
    about the member (our Patient id)."""
    return _decision_event(decision, hop, consent_id, ("Patient", member_id), detail)


def opt_in_decision_event(
    decision: ConsentDecision, hop: Hop, *, consent_id: str | None
) -> AuditEvent:
    """``consent.decision`` about the opt-in: the requester's member id is their number on
    our card, which the chain must not hold (a hash chain cannot forget it when the member
    is erased; ADR 0038)."""
    return _decision_event(decision, hop, consent_id, ("Consent", consent_id or "-"), None)


def _decision_event(
    decision: ConsentDecision,
    hop: Hop,
    consent_id: str | None,
    about: tuple[str, str],
    detail: dict[str, Any] | None,
) -> AuditEvent:
    entity_type, entity_id = about
    return AuditEvent(
        at=hop.at,
        actor=hop.actor,
        action="consent.decision",
        entity_type=entity_type,
        entity_id=entity_id,
        outcome="permit" if decision.permitted else "deny",
        request_id=hop.request_id,
        detail={
            "hop": hop.name,
            "consent_id": consent_id,
            "reason": decision.reason.value if decision.reason else None,
            "policy": decision.policy.value if decision.policy else None,
            "policy_version": decision.policy_version,
            **(detail or {}),
        },
    )


# The purpose of use the audit trail records when the plan's own organization reads its
# members' records: HL7 v3 PurposeOfUse HOPERAT, health care operations (ADR 0052).
OWN_RECORDS_PURPOSE = "HOPERAT"


def authorize_disclosure(store: ConsentReader, request: DisclosureRequest) -> Disclosure:
    """May the requester receive the member's data from us now, and which of it?

    The scope asked is everything we hold; a ``regular`` permit means the caller
    segments before anything leaves, by the sensitive code sets ``code_sets`` names
    (recorded with the decision), and ``scope`` names the data scope (what the rule lets
    leave at all) that shapes what goes. The plan's own organization needs no consent:
    it reads what it holds (``own_records``)."""
    member_id, requester = request.member_id, request.requester
    if is_own_organization(requester, request.source_npi):
        return own_records(request)
    consents = [c.record for c in store.for_member(member_id, ConsentRole.DISCLOSE)]
    decision, consent = decide_among(
        consents,
        ConsentRequest(
            member_id=member_id,
            requester=requester,
            purpose=Purpose.PAYER_TO_PAYER,
            at_time=request.at,
            data_scope=ConsentPolicy.SENSITIVE,
            source_npi=request.source_npi,
            supported_policies=request.supported_policies,
        ),
    )
    consent_id = consent.consent_id if consent else None
    scope = {"scope": request.scope} if request.scope else {}
    event = decision_event(
        decision,
        Hop(request.hop, request.at, requester.client_id, request.request_id),
        consent_id=consent_id,
        member_id=member_id,
        detail={"code_sets": request.code_sets, **scope},
    )
    return Disclosure(decision, consent_id, event)


def own_records(request: DisclosureRequest) -> Disclosure:
    """The plan's own organization reading its own member's records: permitted whole
    (sensitive included, labelled so downstream systems can honour it), with no consent
    to name; audited as every decision is, with the basis and the purpose of use."""
    decision = ConsentDecision(
        True,
        None,
        "The plan's own organization reads its own member's records; no consent applies.",
        ConsentPolicy.SENSITIVE,
    )
    scope = {"scope": request.scope} if request.scope else {}
    event = decision_event(
        decision,
        Hop(request.hop, request.at, request.requester.client_id, request.request_id),
        consent_id=None,
        member_id=request.member_id,
        detail={
            "basis": "own-organization",
            "purpose": OWN_RECORDS_PURPOSE,
            "code_sets": request.code_sets,
            **scope,
        },
    )
    return Disclosure(decision, None, event)


def authorize_request(stored: StoredConsent | None, request: OutboundRequest) -> Disclosure:
    """The requester's check: does the member's opt-in (``stored``, as just read) still
    let us ask this partner for the member's data?"""
    if stored is None or stored.role is not ConsentRole.RECEIVE:
        decision = ConsentDecision.deny(DenyReason.NO_CONSENT)
    else:
        record = stored.record
        decision = evaluate(
            record,
            ConsentRequest(
                member_id=record.member_id,
                requester=request.us,
                purpose=Purpose.PAYER_TO_PAYER,
                at_time=request.at,
                data_scope=record.policy,
                source_npi=request.partner_npi,
            ),
        )
    consent_id = request.consent_id
    hop = Hop(request.hop, request.at, request.us.client_id, request.request_id)
    event = opt_in_decision_event(decision, hop, consent_id=consent_id)
    return Disclosure(decision, ConsentId(consent_id) if consent_id else None, event)


def record_consent(
    unit: UnitOfWork,
    store: ConsentStore,
    consent: StoredConsent,
    *,
    actor: str,
    request_id: str | None,
) -> StoredConsent:
    """Keep an accepted consent with its audit event in ``unit``; the same resource
    presented again by the same client for the same member returns the record kept the
    first time."""
    event = consent_recorded(consent, actor=actor, request_id=request_id)
    return store.add(unit, consent, event=event)


def consent_recorded(consent: StoredConsent, *, actor: str, request_id: str | None) -> AuditEvent:
    """The audit event that keeping ``consent`` commits with."""
    record = consent.record
    return AuditEvent(
        at=consent.created_at,
        actor=actor,
        action="consent.recorded",
        entity_type="Consent",
        entity_id=record.consent_id,
        outcome="success",
        request_id=request_id,
        detail={
            "role": consent.role.value,
            # Our Patient id for a consent presented to us; never our member's card number.
            **({"member_id": record.member_id} if consent.role is ConsentRole.DISCLOSE else {}),
            "policy": record.policy.value,
            "resource_hash": record.resource_hash,
            "partner_id": consent.partner_id,
            "policy_version": record.policy_version,
        },
    )


def revoke_consent(unit: UnitOfWork, store: ConsentStore, command: RevokeConsent) -> StoredConsent:
    """Revoke from ``at`` on, audited, in ``unit`` (where the caller stops what was in
    flight under it). Revoking again keeps the first instant (``model.revoke``)."""
    consent_id, at, by = command.consent_id, command.at, command.by
    revoked = store.revoke(unit, consent_id, at=at, by=by)
    unit.record(
        AuditEvent(
            at=at,
            actor=by,
            action="consent.revoked",
            entity_type="Consent",
            entity_id=consent_id,
            outcome="success",
            request_id=command.request_id,
            detail={
                "role": revoked.role.value,
                "member_id": revoked.record.member_id,
                "revoked_at": (revoked.record.revoked_at or at).isoformat(),
            },
        )
    )
    return revoked


def accept_presented_consent(
    unit: UnitOfWork, store: ConsentStore, command: AcceptPresentedConsent
) -> Disclosure:
    """Decide the Consent a requester presented at ``$member-match`` for the matched member
    and, if it permits, keep it in ``unit`` (HRex mm-13), so that every later data request
    is checked against it. The decision's audit event is the caller's to commit with the
    answer."""
    presented, member_id, requester = command.presented, command.member_id, command.requester
    record = presented.to_record(command.consent_id, member_id=member_id)
    decision = evaluate(
        record,
        ConsentRequest(
            member_id=member_id,
            requester=requester,
            purpose=Purpose.PAYER_TO_PAYER,
            at_time=command.at,
            data_scope=record.policy,
            source_npi=command.source_npi,
            supported_policies=command.supported_policies,
        ),
    )
    if decision.permitted:
        record = record_consent(
            unit,
            store,
            StoredConsent(
                record=record,
                role=ConsentRole.DISCLOSE,
                partner_id=None,
                source_reference=presented.source_reference,
                resource=presented.resource,
                created_at=command.at,
            ),
            actor=requester.client_id,
            request_id=command.request_id,
        ).record
    event = decision_event(
        decision,
        Hop("member-match", command.at, requester.client_id, command.request_id),
        consent_id=record.consent_id if decision.permitted else None,
        member_id=member_id,
        detail=command.detail,
    )
    return Disclosure(decision, record.consent_id, event)
