"""An exchange waiting on the old payer's reviewer (ADR 0013): a person there is looking at
the match, so the exchange waits in ``manual_review`` and asks again now and then, each
time a little later, until the reviewer decides or the wait runs out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from payerbridge.exchange.model import Attempt, ExchangeRecord, ExchangeState, RetryPolicy
from payerbridge.exchange.moves import StepResult, advance, arrival, note_attempt
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.types import ClientId, ExchangeId, PartnerId

__all__ = [
    "PARTNER_REVIEW",
    "PartnerReviewWait",
    "awaits_partner_review",
    "partner_case_reference",
    "partner_review_wait",
    "wait_for_reviewer",
]

S = ExchangeState
PARTNER_REVIEW = ExchangeReason.PARTNER_REVIEW
_REVIEW_POLL_CAP = timedelta(hours=1)


def awaits_partner_review(record: ExchangeRecord) -> bool:
    """In ``manual_review`` because the old payer's reviewer is looking at the match:
    asked again when ``next_attempt_at`` comes, failed at ``deadline_at``."""
    return record.state is S.MANUAL_REVIEW and record.error_code == PARTNER_REVIEW


def wait_for_reviewer(uow: ExchangeUnit, record: ExchangeRecord, text: str, key: str) -> StepResult:
    """The old payer answered that a person is looking at the match: wait for it, asking
    again after as long as we have already waited (at least the poll, at most an hour)."""
    policy = uow.retry_policy
    now = uow.clock()
    detail = {"partner_review": text, "request": key}
    if record.state is S.MANUAL_REVIEW:  # asked again: still under review
        poll = timedelta(seconds=policy.review_poll_seconds)
        # When the wait began is on the row: its deadline less the whole wait.
        began = (record.deadline_at or now) - timedelta(seconds=policy.review_wait_seconds)
        wait = min(max(now - began, poll), _REVIEW_POLL_CAP)
        attempt = Attempt(
            step="member-match",
            attempts=0,
            next_attempt_at=now + wait,
            step_started_at=now,
            last_error="still under review at the old payer",
            detail=detail,
        )
        with uow:
            note_attempt(uow, record.id, attempt, at=now)
        return StepResult(S.MANUAL_REVIEW, done=True)
    waits = {
        "error_code": PARTNER_REVIEW,
        "error_text": text,
        "step_started_at": now,
        "next_attempt_at": now + timedelta(seconds=policy.review_poll_seconds),
        "deadline_at": now + timedelta(seconds=policy.review_wait_seconds),
    }
    moves = [arrival(S.MANUAL_REVIEW, PARTNER_REVIEW, detail, waits)]
    advance(uow, record.id, moves, expected=record.state)
    return StepResult(S.MANUAL_REVIEW, done=True)


# How an old payer names its review case in its answer's text: ours says "review case
# <id>"; HRex gives the case no element of its own, so another server's may name none.
_CASE_REFERENCE = re.compile(r"review case ([0-9A-Za-z][0-9A-Za-z._:-]{0,126}[0-9A-Za-z])")


def partner_case_reference(text: str | None) -> str | None:
    """The old payer's review case named in its answer's text, if it names one."""
    found = _CASE_REFERENCE.search(text or "")
    return found.group(1) if found else None


@dataclass(frozen=True)
class PartnerReviewWait:
    """An exchange waiting on the old payer's reviewer, as the requester follows it."""

    exchange_id: ExchangeId
    partner_id: PartnerId
    client_id: ClientId
    since: datetime | None  # when the old payer first said a person is looking
    waited: timedelta | None
    next_ask_at: datetime | None
    deadline_at: datetime | None
    case_reference: str | None  # the old payer's review case, when its answer names it
    text: str | None  # the old payer's answer


def partner_review_wait(
    record: ExchangeRecord, policy: RetryPolicy, now: datetime
) -> PartnerReviewWait:
    """How long ``record`` has waited on the old payer's reviewer, and until when it may.
    When the wait began is on the row: its deadline less the whole wait (``wait_for_reviewer``)."""
    since = (
        record.deadline_at - timedelta(seconds=policy.review_wait_seconds)
        if record.deadline_at
        else None
    )
    return PartnerReviewWait(
        record.id,
        record.partner_id,
        record.client_id,
        since,
        None if since is None else max(now - since, timedelta(0)),
        record.next_attempt_at,
        record.deadline_at,
        partner_case_reference(record.error_text),
        record.error_text,
    )
