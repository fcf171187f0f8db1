"""The ``$member-match`` hop of an exchange: the old payer asked who our member is there.

Asked under the member's opt-in, decided again first; a member found goes on to
``retrieving`` in the same commit, with the consent decision for the data. The old
payer's answer may also be: no member, several, a refusal on consent grounds, a person
reviewing the match (the exchange then waits, ``review.py``), or an outage (the step
runs again later, ``outbound.py``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from payerbridge.consent.model import StoredConsent
from payerbridge.errors import (
    AmbiguousMatch,
    ConsentDenied,
    MatchUnderReview,
    NoMatch,
    PartnerError,
)
from payerbridge.exchange.budgets import exchange_deadline
from payerbridge.exchange.calls.outbound import (
    StepClock,
    after_failed_call,
    call_partner,
    idempotency_key,
    step_clock,
)
from payerbridge.exchange.model import ExchangeRecord, ExchangeRequest, ExchangeState, Move
from payerbridge.exchange.moves import (
    Blocking,
    StepResult,
    StepRun,
    advance,
    arrival,
    block,
    give_up,
    moved_on,
    partner_code,
)
from payerbridge.exchange.ports import PartnerClient
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.exchange.steps.consent_checks import ConsentCheck, check_consent, refused
from payerbridge.exchange.steps.review import awaits_partner_review, wait_for_reviewer
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.fhir.member_match import MemberMatchResult, build_member_match_request
from payerbridge.routing.model import Partner
from payerbridge.routing.profiles import PROFILES

__all__ = ["match_at_old_payer"]

S = ExchangeState
STEP = "member-match"

_MATCH_FAILURES: dict[type[Exception], str] = {
    NoMatch: ExchangeReason.NO_MATCH,
    AmbiguousMatch: ExchangeReason.MULTIPLE_MATCHES,
}

# The member the old payer found, and how (``MemberId``, or ``Patient?identifier=``).
_Found = tuple[MemberMatchResult, str]
# With the calls that found it, as the move's detail keeps them.
_Answer = tuple[_Found, dict[str, Any]]


def match_at_old_payer(
    uow: ExchangeUnit, run: StepRun, request: ExchangeRequest, *, check: ConsentCheck | None = None
) -> tuple[StepResult, ExchangeRecord]:
    """route_selected (or manual_review, asking the old payer's reviewer again) →
    member_matched → retrieving, under ``check`` when prepare has just committed one for
    this hop; with the record as the last commit left it.

    On a replay the member was matched before: a different answer now is not silently
    accepted but stops in ``manual_review``."""
    record, partner = run.record, run.partner
    if check is None:
        check = check_consent(uow, record, partner, "member-match")
        if check.consent is None:
            return refused(uow, record.id, check), record
        uow.audit.record(check.event)  # durable before anything leaves
    assert check.consent is not None
    parameters = _parameters(uow, record, partner, request, check.consent)
    clock = step_clock(uow, run, STEP)
    asked = _ask(uow, record, parameters, clock)
    if isinstance(asked, StepResult):
        return asked, record
    return _matched(uow, record, partner, check.consent, asked)


def _parameters(
    uow: ExchangeUnit,
    record: ExchangeRecord,
    partner: Partner,
    request: ExchangeRequest,
    consent: StoredConsent,
) -> dict[str, Any]:
    """The ``$member-match`` Parameters, in the HRex version the route chose."""
    return build_member_match_request(
        request,
        consent.resource,
        us=uow.us,
        partner=partner.organization,
        shape=PROFILES.hrex.get(record.request_shape or "", PROFILES.current),
    )


def _ask(
    uow: ExchangeUnit, record: ExchangeRecord, parameters: dict[str, Any], clock: StepClock
) -> StepResult | _Answer:
    """The old payer's member, or where its answer (or its silence) left the exchange."""
    exchange_id = record.id
    key = idempotency_key(record, STEP)
    if awaits_partner_review(record):
        # A new question: under the first key the old payer answers its first answer again.
        key += f":review-{int(uow.clock().timestamp())}"
    try:
        outcome = call_partner(
            uow,
            clock,
            lambda at, timeout: _member_of(uow.client, at, parameters, key, timeout),
        )
    except ConsentDenied as exc:  # the old payer cannot comply with the consent (mm-11)
        return block(uow, exchange_id, Blocking(exc.reason, exc.text, {"by": "partner"}))
    except MatchUnderReview as exc:  # a person at the old payer is looking at the match
        return wait_for_reviewer(uow, record, exc.text, key)
    except (NoMatch, AmbiguousMatch) as exc:
        return give_up(uow, exchange_id, _MATCH_FAILURES[type(exc)], exc.text)
    except PartnerError as exc:  # terminal: a contract error, or credentials refused twice
        return give_up(uow, exchange_id, partner_code(exc), exc.text, {"status": exc.status})
    if outcome.value is None:
        return after_failed_call(outcome, record.state)
    return outcome.value, outcome.calls_detail()


def _member_of(
    client: PartnerClient,
    partner: Partner,
    parameters: dict[str, Any],
    key: str,
    timeout: float,
) -> _Found:
    """``$member-match``, then, where the partner answers the HRex 1.0.0 way (the member's
    identifier without ``MemberId``), the ``Patient?identifier=`` search PDex 2.0 expects
    next; with how the member was found. One attempt: both calls are safe to repeat."""
    answer = client.member_match(partner, parameters, idempotency_key=key, timeout=timeout)
    if answer.member_ref is not None:
        return answer, "MemberId"
    identifier = (answer.identifier_system, answer.identifier_value)
    found = client.find_member(partner, identifier, idempotency_key=key, timeout=timeout)
    return replace(answer, member_ref=found), "Patient?identifier="


def _matched(
    uow: ExchangeUnit,
    record: ExchangeRecord,
    partner: Partner,
    consent: StoredConsent,
    asked: _Answer,
) -> tuple[StepResult, ExchangeRecord]:
    """The member found: → member_matched → retrieving in one commit, with the opt-in
    decided again for the data; a member other than the one matched before stops."""
    (answer, found_by), calls = asked
    member_ref = answer.member_ref
    assert member_ref is not None
    if record.matched_member_ref is not None and record.matched_member_ref != member_ref:
        return _identity_changed(uow, record), record
    updates: dict[str, Any] = {
        "matched_member_ref": member_ref,
        "member_identifier": answer.identifier_value,
    }
    if awaits_partner_review(record):  # decided: the wait is over, the data has its budget
        deadline = exchange_deadline(uow, partner, uow.clock())
        updates |= {"error_code": None, "error_text": None, "deadline_at": deadline}
    reached = Move(
        S.MEMBER_MATCHED,
        detail={"member_found_by": found_by, **calls},
        updates={"attempts": 0, "next_attempt_at": None, **updates},
    )
    matched = moved_on(record, S.MEMBER_MATCHED, matched_member_ref=member_ref)
    onward = check_consent(uow, matched, partner, "everything", read=consent)
    if onward.consent is None:
        return refused(uow, record.id, onward, before=[reached]), matched
    event = onward.event
    moves = [reached, arrival(S.RETRIEVING)]
    advance(uow, record.id, moves, event=event, expected=record.state)
    return StepResult(S.RETRIEVING), moved_on(matched, S.RETRIEVING)


def _identity_changed(uow: ExchangeUnit, record: ExchangeRecord) -> StepResult:
    """The old payer matched another member than before: a person must decide."""
    if record.state is S.MANUAL_REVIEW:  # the old payer's reviewer chose another member
        text = "the old payer's reviewer matched a different member than before"
        return give_up(uow, record.id, ExchangeReason.IDENTITY_CHANGED, text)
    reason = ExchangeReason.IDENTITY_CHANGED
    text = (
        "on replay the partner matched a different member than before; "
        "a person must confirm the member before data is requested"
    )
    detail = {"replay": record.replay_count}
    stop = {"error_code": reason, "error_text": text}
    advance(uow, record.id, [arrival(S.MANUAL_REVIEW, reason, detail, stop)])
    return StepResult(S.MANUAL_REVIEW, done=True)
