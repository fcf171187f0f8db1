"""An exchange waiting on the old payer's reviewer (ADR 0013): a person there is looking at
the match, so the exchange waits in ``manual_review`` and asks again now and then, each
time a little later, until the reviewer decides or the wait runs out.
"""

from __future__ import annotations

from datetime import timedelta

from payerbridge.exchange.model import Attempt, ExchangeRecord, ExchangeState
from payerbridge.exchange.moves import StepResult, advance, note_attempt
from payerbridge.exchange.ports import ExchangePorts
from payerbridge.exchange.reasons import ExchangeReason

__all__ = ["PARTNER_REVIEW", "awaits_partner_review", "wait_for_reviewer"]

S = ExchangeState
PARTNER_REVIEW = ExchangeReason.PARTNER_REVIEW
_REVIEW_POLL_CAP = timedelta(hours=1)


def awaits_partner_review(record: ExchangeRecord) -> bool:
    """In ``manual_review`` because the old payer's reviewer is looking at the match:
    asked again when ``next_attempt_at`` comes, failed at ``deadline_at``."""
    return record.state is S.MANUAL_REVIEW and record.error_code == PARTNER_REVIEW


def wait_for_reviewer(
    ports: ExchangePorts, record: ExchangeRecord, text: str, key: str
) -> StepResult:
    """The old payer answered that a person is looking at the match: wait for it, asking
    again after as long as we have already waited (at least the poll, at most an hour)."""
    policy = ports.retry_policy
    now = ports.clock()
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
        with ports.transactions.begin() as unit:
            note_attempt(unit, ports, record.id, attempt, at=now)
        return StepResult(S.MANUAL_REVIEW, done=True)
    advance(
        ports,
        record.id,
        S.MANUAL_REVIEW,
        reason_code=PARTNER_REVIEW,
        detail=detail,
        updates={
            "error_code": PARTNER_REVIEW,
            "error_text": text,
            "attempts": 0,
            "step_started_at": now,
            "next_attempt_at": now + timedelta(seconds=policy.review_poll_seconds),
            "deadline_at": now + timedelta(seconds=policy.review_wait_seconds),
        },
        expected=record.state,
    )
    return StepResult(S.MANUAL_REVIEW, done=True)
