"""The new payer's obligation rows, kept as an exchange moves (ADR 0037, "Obligation rows
and the report"); each written in the unit of work of the move that changes it.

- ``request-after-enrolment`` starts when the exchange is submitted, at the later of the
  new coverage's start (the first instant of that day in the plan's zone) and the
  member's opt-in (the first instant its period is in force). It is met when **we
  asked**: the first move that follows the old payer's answer to our ``$member-match``
  (``is_asked``), whatever it answered.
- the old payer's ``answer-within-one-business-day``, as we see it, starts then and is
  met when its data is ``received`` (at once when it answered that no member matches or
  refused on consent grounds: there is no data to wait for).

A move that stops the exchange, and an attempt that waits (a maintenance window, an
outage), notes its reason code on the rows still running: a row that ends up missed
says what held it up.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from payerbridge.compliance.clocks import Subject, SubjectType, new_clock
from payerbridge.compliance.obligations import ANSWER_WITHIN, REQUEST_AFTER_ENROLMENT
from payerbridge.consent.model import StoredConsent
from payerbridge.exchange.model import STOPPED_STATES, ExchangeRequest, ExchangeState, Move
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.types import ExchangeId

__all__ = [
    "day_start",
    "request_events",
    "is_asked",
    "keep_clocks",
    "note_hold",
    "start_request_clock",
    "take_over_clock",
]

S = ExchangeState
# The old payer's answers that end the exchange: the question was asked and answered.
_ANSWERED_ENDS = frozenset({ExchangeReason.NO_MATCH, ExchangeReason.MULTIPLE_MATCHES})


def start_request_clock(
    uow: ExchangeUnit,
    exchange_id: ExchangeId,
    request: ExchangeRequest,
    opt_in: StoredConsent,
) -> None:
    """The exchange's ``request-after-enrolment`` row, as it is submitted in ``unit``."""
    if uow.clocks is None:
        return
    obligations = uow.clocks.obligations
    events = request_events(uow, request, opt_in)
    clock = new_clock(
        obligations,
        REQUEST_AFTER_ENROLMENT,
        Subject(SubjectType.EXCHANGE, exchange_id),
        events,
        clock_id=uow.new_id(),
        at=uow.now,
        partner_id=request.old_payer,
    )
    uow.clocks.ledger.start(uow, clock)


def request_events(
    uow: ExchangeUnit, request: ExchangeRequest, opt_in: StoredConsent
) -> dict[str, datetime]:
    """What the rule's request clock counts from: the member's opt-in (the first instant
    its period is in force) and the new coverage's start (the first instant of that day
    in the plan's zone; the opt-in when unknown)."""
    opted_in = opt_in.record.period_start
    if uow.clocks is None:
        return {"opt_in": opted_in, "coverage_start": opted_in}
    covered = day_start(request.new_coverage.start, uow.clocks.obligations.calendar.tz)
    return {"opt_in": opted_in, "coverage_start": covered or opted_in}


def take_over_clock(uow: ExchangeUnit, exchange_id: ExchangeId, source: Subject) -> None:
    """A standing pull's exchange takes the period its schedule owed (``source``: the
    period, or the exchange of a pull tried before that brought no answer)."""
    if uow.clocks is not None:
        target = Subject(SubjectType.EXCHANGE, exchange_id)
        uow.clocks.ledger.hand_over(uow, source, target)


def day_start(day: date | None, zone: ZoneInfo) -> datetime | None:
    """The first instant of ``day`` in ``zone`` (None: no day)."""
    return None if day is None else datetime.combine(day, time(), zone)


def is_asked(move: Move) -> bool:
    """Whether ``move`` follows the old payer's answer to our ``$member-match``: the
    member found, its reviewer looking, no member or several, a refusal on consent
    grounds. A call that brought no answer (an outage, a timeout) is not asking."""
    if move.target is S.MEMBER_MATCHED:
        return True
    if move.target is S.MANUAL_REVIEW:
        return move.reason_code == ExchangeReason.PARTNER_REVIEW
    if move.target is S.FAILED:
        return move.reason_code in _ANSWERED_ENDS
    if move.target is S.BLOCKED:
        return (move.detail or {}).get("by") == "partner"
    return False


def keep_clocks(
    uow: ExchangeUnit,
    exchange_id: ExchangeId,
    moves: Sequence[Move],
    *,
    at: datetime,
) -> None:
    """The exchange's rows as ``moves`` (recorded in ``unit``) leave them."""
    if uow.clocks is None:
        return
    ledger, subject = uow.clocks.ledger, Subject(SubjectType.EXCHANGE, exchange_id)
    for move in moves:
        if is_asked(move):  # whichever the request met: its first, or a pull's period
            ledger.settle_asked(uow, subject, done_at=at)
            _start_partner_clock(uow, subject, move, at)
        elif move.target is S.RECEIVED:
            ledger.settle(uow, ANSWER_WITHIN, subject, done_at=at)
        elif move.target is S.ROUTE_SELECTED and (move.updates or {}).get("next_attempt_at"):
            ledger.note(uow, subject, _route_wait(move), at=at)
        elif move.target in STOPPED_STATES and move.target not in (S.PARTIAL, S.CONFLICT):
            ledger.note(uow, subject, move.reason_code or move.target.value, at=at)


def _route_wait(move: Move) -> str:
    """Why the route chosen waits before its first call: the partner's announced window
    (a planned wait, which extends the exchange's deadline) or its open circuit."""
    planned = "deadline_at" in (move.updates or {})
    return ExchangeReason.MAINTENANCE if planned else ExchangeReason.CIRCUIT_OPEN


def _start_partner_clock(uow: ExchangeUnit, subject: Subject, move: Move, at: datetime) -> None:
    """The old payer's answer clock, from our asking; done at once when its answer ends
    the exchange (no data will come)."""
    assert uow.clocks is not None
    ends = move.target in (S.FAILED, S.BLOCKED)
    clock = new_clock(
        uow.clocks.obligations,
        ANSWER_WITHIN,
        subject,
        {"request_received": at},
        clock_id=uow.new_id(),
        at=at,
        done_at=at if ends else None,
    )
    uow.clocks.ledger.start_after(uow, clock)
    if move.target is S.MANUAL_REVIEW:  # its answer waits for a person there
        uow.clocks.ledger.note(uow, subject, ExchangeReason.PARTNER_REVIEW, at=at)


def note_hold(uow: ExchangeUnit, exchange_id: ExchangeId, reason: str, *, at: datetime) -> None:
    """What held a call of the exchange back (``reason``, a code) on its running rows."""
    if uow.clocks is None:
        return
    subject = Subject(SubjectType.EXCHANGE, exchange_id)
    uow.clocks.ledger.note(uow, subject, reason, at=at)
