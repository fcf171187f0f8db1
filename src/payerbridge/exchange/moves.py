"""How a step records where it leaves an exchange, and says so to the workflow.

Each move of the exchange commits with its audit events, built here from the moves (the
store writes the rows, the use case records the events on the same unit of work). A
step returns a ``StepResult``: stopped, carrying on, or to be run again at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import IllegalTransition, PartnerAuthRejected, PartnerError
from payerbridge.exchange.clocks import keep_clocks, note_hold
from payerbridge.exchange.model import (
    STOPPED_STATES,
    Attempt,
    ExchangeRecord,
    ExchangeState,
    Move,
    Stamp,
    attempt_event,
    transition_events,
)
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.routing.model import Partner
from payerbridge.types import ExchangeId

__all__ = [
    "SYSTEM_ACTOR",
    "Advance",
    "Blocking",
    "StepResult",
    "StepRun",
    "advance",
    "advance_in",
    "arrival",
    "block",
    "fail",
    "give_up",
    "moved_on",
    "note_attempt",
    "partner_code",
    "record_moves",
    "stopped",
]

logger = logging.getLogger(__name__)
S = ExchangeState
SYSTEM_ACTOR = "payerbridge"


@dataclass(frozen=True)
class StepResult:
    """Where the step left the exchange: ``done`` when no further step should run,
    ``retry_at`` when this step should run again then (the row says which attempt that
    is and when the step began: ``proceed`` resumes from it)."""

    state: ExchangeState
    done: bool = False
    retry_at: datetime | None = None


@dataclass(frozen=True)
class StepRun:
    """A step of an exchange being run: the record as the last commit left it, the old
    payer it asks, the attempt its call makes and when the step began (carried on from
    the row when the call was tried before in this state)."""

    record: ExchangeRecord
    partner: Partner
    attempt: int
    started: datetime


def moved_on(record: ExchangeRecord, state: ExchangeState, **updates: Any) -> ExchangeRecord:
    """The record as a commit that moved it to ``state`` left it (a transition resets
    the attempts of the call that waited)."""
    return replace(record, state=state, attempts=0, next_attempt_at=None, **updates)


def stopped(state: ExchangeState) -> StepResult:
    """The exchange is past this step (a replayed step) or has stopped."""
    return StepResult(state, done=state in STOPPED_STATES)


@dataclass(frozen=True)
class Advance:
    """Record ``moves`` of an exchange, at ``at`` by ``actor``; ``expected``, the state
    they start from as the caller read it (IllegalTransition if it has left it)."""

    exchange_id: ExchangeId
    moves: Sequence[Move]
    at: datetime
    actor: str = SYSTEM_ACTOR
    expected: ExchangeState | None = None


@dataclass(frozen=True)
class Blocking:
    """Why an exchange stops on consent grounds: the reason code and its text, what the
    audit trail keeps of it, the moves on the way there and, when the decision was ours,
    the audited decision that refused it."""

    reason: str
    text: str
    detail: dict[str, Any]
    before: Sequence[Move] = ()
    event: AuditEvent | None = None


def arrival(
    target: ExchangeState,
    reason_code: str | None = None,
    detail: dict[str, Any] | None = None,
    updates: dict[str, Any] | None = None,
) -> Move:
    """A move to ``target`` that starts its step afresh: no attempt counted, none due."""
    return Move(
        target, reason_code, detail, {"attempts": 0, "next_attempt_at": None, **(updates or {})}
    )


def record_moves(uow: ExchangeUnit, command: Advance) -> None:
    """The command's moves in ``uow``'s transaction, each with its audit event."""
    stamp = Stamp(command.at, command.actor, uow.retry_policy.version)
    exchange_id = command.exchange_id
    start = uow.exchanges.advance(exchange_id, command.moves, stamp, expected=command.expected)
    uow.record(*transition_events(exchange_id, start, command.moves, stamp))
    keep_clocks(uow, exchange_id, command.moves, at=command.at)


def note_attempt(
    uow: ExchangeUnit,
    exchange_id: ExchangeId,
    attempt: Attempt,
    *,
    at: datetime,
) -> None:
    """``attempt`` on the exchange's row in ``unit``, with its audit event."""
    uow.exchanges.record_attempt(exchange_id, attempt, at=at)
    uow.record(attempt_event(exchange_id, attempt, at=at))
    reason = attempt.detail.get("reason")
    if reason:
        note_hold(uow, exchange_id, str(reason), at=at)


def fail(uow: ExchangeUnit, exchange_id: ExchangeId, code: str, text: str) -> StepResult:
    """Give up on an exchange (after an unexpected error); a no-op once it has stopped."""
    state = uow.exchanges.current(exchange_id).state
    if state in STOPPED_STATES:
        return StepResult(state, done=True)
    return give_up(uow, exchange_id, code, text)


def give_up(
    uow: ExchangeUnit,
    exchange_id: ExchangeId,
    code: str,
    text: str,
    detail: dict[str, Any] | None = None,
) -> StepResult:
    """→ ``failed`` with ``code`` and ``text``, from whatever state the exchange is in."""
    stop = {"error_code": code, "error_text": text, "next_attempt_at": None}
    with uow:
        moves = [Move(S.FAILED, code, detail, stop)]
        record_moves(uow, Advance(exchange_id, moves, uow.clock()))
    logger.warning("exchange failed", extra={"exchange_id": exchange_id, "reason_code": code})
    return StepResult(S.FAILED, done=True)


def advance(
    uow: ExchangeUnit,
    exchange_id: ExchangeId,
    moves: Sequence[Move],
    *,
    event: AuditEvent | None = None,
    expected: ExchangeState | None = None,
) -> None:
    """``advance_in`` a unit of work of its own, after ``event`` (the consent decision
    that allowed the moves)."""
    with uow:
        if event is not None:
            uow.record(event)
        advance_in(uow, exchange_id, moves, expected=expected)


def advance_in(
    uow: ExchangeUnit,
    exchange_id: ExchangeId,
    moves: Sequence[Move],
    *,
    expected: ExchangeState | None = None,
) -> None:
    """``moves`` by the system, now, in ``uow``'s transaction; ``expected``, the state the
    moves start from as the caller read it (the store then moves the row only if it is
    still there)."""
    record_moves(uow, Advance(exchange_id, moves, uow.clock(), expected=expected))


def block(uow: ExchangeUnit, exchange_id: ExchangeId, blocking: Blocking) -> StepResult:
    """→ ``blocked`` on consent grounds (with the audited decision that refused it, when
    ours); a revocation may have blocked it already."""
    reason = blocking.reason
    updates = {"error_code": reason, "error_text": blocking.text}
    moves = [*blocking.before, arrival(S.BLOCKED, reason, blocking.detail, updates)]
    try:
        advance(uow, exchange_id, moves, event=blocking.event)
    except IllegalTransition:
        if blocking.event is not None:
            uow.audit.record(blocking.event)
        return stopped(uow.exchanges.current(exchange_id).state)
    logger.warning("exchange blocked", extra={"exchange_id": exchange_id, "reason_code": reason})
    return StepResult(S.BLOCKED, done=True)


def partner_code(error: PartnerError) -> str:
    """The reason code of a partner's terminal refusal."""
    return (
        ExchangeReason.PARTNER_UNAUTHORIZED
        if isinstance(error, PartnerAuthRejected)
        else ExchangeReason.PARTNER_ERROR
    )
