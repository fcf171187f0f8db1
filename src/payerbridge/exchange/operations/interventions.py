"""What people outside the workflow do to an exchange: an operator replays a dead-lettered
one (or asks again for one that ended ``partial`` or ``conflict``), cancels one that
waits, or has the old payer's reviewer asked again now; a member's revocation stops
every exchange running under the opt-in revoked.

Each commits with its audit events; an exchange whose step is running now is refused
(Conflict) where acting on it would race the step.
"""

from __future__ import annotations

import logging
from datetime import datetime

from payerbridge.compliance.clocks import CLOSED_REVOKED
from payerbridge.consent.model import ConsentRole, RevokeConsent, StoredConsent
from payerbridge.consent.service import revoke_consent
from payerbridge.errors import Conflict, Issue
from payerbridge.exchange.budgets import exchange_deadline
from payerbridge.exchange.model import (
    ASKABLE_AGAIN,
    STOPPED_STATES,
    Attempt,
    ExchangeRecord,
    ExchangeState,
    Move,
    Stamp,
    transition_events,
)
from payerbridge.exchange.moves import Advance, note_attempt, record_moves
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.exchange.steps.review import awaits_partner_review
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.types import ExchangeId

__all__ = ["ask_again_now", "can_cancel", "cancel", "replay", "revoke_and_stop"]

logger = logging.getLogger(__name__)
S = ExchangeState

# States an operator may cancel from: nothing of the exchange is running in them.
_CANCELLABLE = frozenset({S.MANUAL_REVIEW, S.DEAD_LETTERED, S.BLOCKED, S.PARTIAL, S.CONFLICT})


def replay(
    uow: ExchangeUnit,
    exchange_id: ExchangeId,
    *,
    actor: str,
    replay_key: str | None,
) -> bool:
    """Send a dead-lettered exchange back to ``validated`` with a fresh budget, so that the
    workflow re-checks consent and the member's identity before it asks for data again;
    the same for one that ended ``partial`` or ``conflict`` (asked again: what the old
    payer sends now updates what we hold, ``exchange.received.reconcile``).

    Idempotent: True when this call replayed it; False when the same ``replay_key``
    already did. Any other state is a Conflict."""
    record = uow.exchanges.get(exchange_id)  # with its history: the replays' keys
    letter = uow.exchanges.dead_letter(exchange_id)
    if replay_key is not None and letter is not None and letter.replay_key == replay_key:
        return False
    if replay_key is not None and any(
        t.reason_code == ExchangeReason.REPLAY and (t.detail or {}).get("replay_key") == replay_key
        for t in record.transitions
    ):
        return False
    if record.state not in ASKABLE_AGAIN:
        raise Conflict(
            f"exchange {exchange_id} is '{record.state}'; only dead-lettered, partial or "
            "conflict exchanges can be replayed",
            issues=[
                Issue(
                    f"exchange {exchange_id} is '{record.state}', not one of "
                    f"{', '.join(sorted(s.value for s in ASKABLE_AGAIN))}",
                    "state",
                    "business-rule",
                )
            ],
        )
    now = uow.clock()
    detail = {
        "replay": record.replay_count + 1,
        "replayed_from": record.state.value,
        "dead_lettered_in": letter.step if letter and record.state is S.DEAD_LETTERED else None,
        "replay_key": replay_key,
    }
    fresh = {
        "replay_count": record.replay_count + 1,
        "deadline_at": exchange_deadline(uow, uow.partners.get(record.partner_id), now),
        "attempts": 0,
        "next_attempt_at": None,
        "error_code": None,
        "error_text": None,
    }
    with uow:
        if record.state is S.DEAD_LETTERED:
            uow.exchanges.mark_replayed(exchange_id, by=actor, key=replay_key, at=now)
        moves = [Move(S.VALIDATED, ExchangeReason.REPLAY, detail, fresh)]
        record_moves(uow, Advance(exchange_id, moves, now, actor, expected=record.state))
    logger.info("exchange replayed", extra={"exchange_id": exchange_id})
    return True


def cancel(uow: ExchangeUnit, exchange_id: ExchangeId, *, actor: str, note: str) -> None:
    """An operator ends an exchange that waits (on a person, a review at the old payer, a
    replay, or its next attempt): ``failed`` with ``cancelled`` and the operator's note.
    One whose step is running now is refused (Conflict): cancel it when it waits."""
    record = uow.exchanges.current(exchange_id)
    now = uow.clock()
    if not can_cancel(record, now):
        raise _not_now(exchange_id, record.state, "cancelled", "while it waits")
    text = f"cancelled by an operator: {note}"
    stop = {"error_code": ExchangeReason.CANCELLED, "error_text": text, "next_attempt_at": None}
    moves = [Move(S.FAILED, ExchangeReason.CANCELLED, {"by": actor, "note": note}, stop)]
    with uow:
        record_moves(uow, Advance(exchange_id, moves, now, actor, expected=record.state))
    logger.info("exchange cancelled", extra={"exchange_id": exchange_id})


def can_cancel(record: ExchangeRecord, now: datetime) -> bool:
    """Whether an operator may cancel the exchange now: it waits (on a person, a review
    at the old payer, a replay, or its next attempt)."""
    waiting = record.next_attempt_at is not None and record.next_attempt_at > now
    return record.state in _CANCELLABLE or (waiting and record.state not in STOPPED_STATES)


def ask_again_now(uow: ExchangeUnit, exchange_id: ExchangeId, *, actor: str) -> datetime:
    """An operator has the old payer asked again at once about a match it has under
    review, instead of at the next poll: the sweep starts the run (when it is due)."""
    record = uow.exchanges.current(exchange_id)
    if not awaits_partner_review(record):
        raise _not_now(exchange_id, record.state, "asked again", "under the old payer's review")
    now = uow.clock()
    attempt = Attempt(
        step="member-match",
        attempts=record.attempts,
        next_attempt_at=now,
        step_started_at=record.step_started_at or now,
        last_error=record.last_error or "under review at the old payer",
        detail={"resubmitted_by": actor},
    )
    with uow:
        note_attempt(uow, exchange_id, attempt, at=now)
    return now


def _not_now(exchange_id: ExchangeId, state: ExchangeState, verb: str, when: str) -> Conflict:
    text = f"exchange {exchange_id} is '{state}': it can be {verb} only {when}"
    return Conflict(text, issues=[Issue(text, "state", "business-rule")])


def revoke_and_stop(
    uow: ExchangeUnit, consent_id: str, *, by: str, request_id: str | None
) -> tuple[StoredConsent, list[ExchangeId]]:
    """Revoke a consent now; unfinished exchanges running under it (a member's opt-in)
    move to ``blocked`` with reason ``revoked`` in the same transaction, so no step
    that starts afterwards sends anything, and the obligation rows still running under
    it (its exchanges', standing pulls', onboarding members') are closed
    (``opt-in-revoked``). Returns the consent and the blocked ids."""
    now = uow.clock()
    blocked: list[ExchangeId] = []
    text = "the member revoked the consent this exchange ran under"
    stop = {"error_code": "revoked", "error_text": text, "next_attempt_at": None}
    move = Move(S.BLOCKED, "revoked", {"consent_id": consent_id}, stop)
    with uow:
        revoked = revoke_consent(
            uow, uow.consents, RevokeConsent(consent_id, at=now, by=by, request_id=request_id)
        )
        if revoked.role is ConsentRole.RECEIVE:
            moved = uow.exchanges.block_under_consent(consent_id, move, at=now, actor=by)
            for exchange_id, start in moved:
                uow.record(*transition_events(exchange_id, start, [move], Stamp(now, by)))
            blocked = [exchange_id for exchange_id, _ in moved]
        if uow.clocks is not None:  # what ran under it is no longer owed (ADR 0037)
            uow.clocks.ledger.close_under_consent(uow, consent_id, CLOSED_REVOKED, at=now)
    if blocked:
        logger.info("exchanges blocked by revocation", extra={"exchanges": len(blocked)})
    return revoked, blocked
