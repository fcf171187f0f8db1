"""The consent decision (pure): does this consent permit this request, at this instant?

``evaluate`` is the single check every hop calls: ``$member-match``, each data
retrieval (``$everything``, searches, export), each retry or replay of an
exchange step, the requester before each outbound call, and token issuance.
It reads no clock and no store; the caller passes the instant and the facts.

Checks run in this order and the first failing one is the reason:

1. ``malformed``           the record or the request cannot be reasoned about.
2. ``member-mismatch``     the consent is another member's,
3. ``source-mismatch``     or it does not let this discloser disclose,
4. ``recipient-mismatch``  or it does not name the requester as a recipient.
5. ``revoked``             the member withdrew it (at or before ``at_time``).
6. ``policy-unsupported``  the discloser cannot comply with its policy for this scope.
7. ``not-yet-valid``       ``at_time`` is before the period start,
8. ``expired``             or after the period end.

Why this order: 1–4 ask whether the consent applies to this request at all; a party
it does not apply to learns only that, never the state of someone else's consent.
Among consents that do apply, a revocation outranks everything else from its
instant on: it is the member's latest word. Policy comes before the period because
it is permanent: a fresh consent with the same policy would not help, while an
expired one is fixed by renewing it.

``data_scope`` is what the caller is about to release: ``REGULAR`` for
non-sensitive data only, ``SENSITIVE`` for everything it holds. A permit carries
the *effective* policy, the narrower of the consent's and the scope's. When that
is ``REGULAR`` the caller must segment (``consent.segmentation.segment``) before
sending anything; a ``regular`` consent with a ``sensitive`` scope is therefore a
permit for non-sensitive data, not a denial. ``supported_policies`` is what the
discloser can comply with for this member's data right now: a payer that holds a
resource type it cannot segment passes ``{SENSITIVE}`` only
(``segmentation.supported_policies``), which turns an effective ``REGULAR`` into
``policy-unsupported`` (HRex mm-11: 422 for a single match, consent-constrained in bulk).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from payerbridge.consent.model import (
    ConsentDecision,
    ConsentPolicy,
    ConsentRecord,
    ConsentRequest,
    DenyReason,
    Purpose,
    require_aware,
)

__all__ = ["decide_among", "effective_policy", "evaluate"]

_ALL_POLICIES = frozenset(ConsentPolicy)


def effective_policy(consent_policy: ConsentPolicy, data_scope: ConsentPolicy) -> ConsentPolicy:
    """The narrower of what the member allowed and what the caller asks to release."""
    if ConsentPolicy.REGULAR in (consent_policy, data_scope):
        return ConsentPolicy.REGULAR
    return ConsentPolicy.SENSITIVE


def evaluate(consent: ConsentRecord, request: ConsentRequest) -> ConsentDecision:
    """Permit or deny one request under one consent at ``at_time`` (see the module docstring).

    ``source_npi`` is the organization that would disclose: this payer on the data
    holder's side, the old payer when the requester re-checks before calling out.
    ``purpose`` must be a :class:`Purpose`; an HRex consent authorizes payer-to-payer
    exchange and nothing else, so any other purpose is ``malformed``.

    The requester is checked by organization (HRex names organizations, and one may hold
    several client registrations); the client that presented the consent is on the
    record for audit.

    Raises ValueError for a naive ``at_time``: that is a bug in the caller, not a
    property of the consent. Everything wrong with the consent itself is a denial,
    so that a damaged record fails closed.
    """
    at_time, data_scope = request.at_time, request.data_scope
    require_aware(at_time, "at_time")
    problem = _malformation(consent, request.purpose, data_scope)
    if problem is not None:
        return ConsentDecision.deny(DenyReason.MALFORMED, detail=problem)
    if consent.member_id != request.member_id:
        return ConsentDecision.deny(DenyReason.MEMBER_MISMATCH)
    if consent.source_npi != request.source_npi:
        return ConsentDecision.deny(DenyReason.SOURCE_MISMATCH)
    if request.requester.npi not in consent.recipient_npis:
        return ConsentDecision.deny(DenyReason.RECIPIENT_MISMATCH)
    if consent.revoked_at is not None and at_time >= consent.revoked_at:
        return ConsentDecision.deny(DenyReason.REVOKED)
    policy = effective_policy(ConsentPolicy(consent.policy), ConsentPolicy(data_scope))
    if policy not in request.supported_policies:
        return ConsentDecision.deny(DenyReason.POLICY_UNSUPPORTED)
    if at_time < consent.period_start:
        return ConsentDecision.deny(DenyReason.NOT_YET_VALID)
    if at_time > consent.period_end:
        return ConsentDecision.deny(DenyReason.EXPIRED)
    return ConsentDecision.permit(policy)


def _is_aware(value: object) -> bool:
    return (
        isinstance(value, datetime)
        and value.tzinfo is not None
        and value.tzinfo.utcoffset(value) is not None
    )


def _malformation(consent: ConsentRecord, purpose: str, data_scope: object) -> str | None:
    """The first thing that stops the consent or request from being evaluated; names only."""
    if consent.policy not in _ALL_POLICIES:
        return "the consent policy is not one of regular, sensitive"
    if not _is_aware(consent.period_start) or not _is_aware(consent.period_end):
        return "the consent period bounds must be timezone-aware"
    if consent.period_end < consent.period_start:
        return "the consent period ends before it starts"
    if consent.revoked_at is not None and not _is_aware(consent.revoked_at):
        return "the revocation time must be timezone-aware"
    if not consent.member_id or not consent.source_npi:
        return "the consent has no member or no source organization"
    if not consent.recipient_npis:
        return "the consent names no recipient organization"
    if purpose not in set(Purpose):
        return "the purpose of the request is not payer-to-payer exchange"
    if data_scope not in _ALL_POLICIES:
        return "the data scope of the request is not one of regular, sensitive"
    return None


def decide_among(
    consents: Sequence[ConsentRecord], request: ConsentRequest
) -> tuple[ConsentDecision, ConsentRecord | None]:
    """The decision over every consent on file for a member, newest first.

    The first consent that permits wins (a member may have renewed). Otherwise the
    reason is that of the newest consent naming this requester, so a requester never
    learns the state of a consent given to someone else; with none, ``no-consent``.
    """
    applicable: ConsentRecord | None = None
    first_denial: ConsentDecision | None = None
    for consent in consents:
        decision = evaluate(consent, request)
        if decision.permitted:
            return decision, consent
        if first_denial is None and decision.reason not in _NOT_THEIRS:
            first_denial, applicable = decision, consent
    if first_denial is None:
        return ConsentDecision.deny(DenyReason.NO_CONSENT), None
    return first_denial, applicable


# Denials that say the consent is not about this request at all.
_NOT_THEIRS = frozenset(
    {DenyReason.MEMBER_MISMATCH, DenyReason.SOURCE_MISMATCH, DenyReason.RECIPIENT_MISMATCH}
)
