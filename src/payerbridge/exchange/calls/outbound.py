"""One outbound partner call of an exchange step, inside its deadline and the endpoint's
breaker (ADR 0047: time budgets, not attempt counts).

``call_partner`` makes at most one attempt (two when credentials need refreshing)
and reports what the step should do next: use the answer, wait and try again, or
stop because the exchange was dead-lettered. The durable workflow does the waiting
(``DBOS.sleep``), so a worker crash between attempts loses nothing.

An attempt is a call that went out. A call the open breaker, the partner's maintenance
window or its announced rate limit holds back is **parked**: it waits for it, within the
exchange's deadline, and spends no attempt; the first park is audited (with when the
exchange looks again and why), the same park renewed at each look is not. A call that
failed retryably is tried again after a backoff that grows toward the deadline
(``retry.decide_retry``). The exchange is dead-lettered when its deadline passes (or
leaves no time for another call): ``deadline-exceeded``, with the last error.

The breaker itself, its probe and its audit, are ``circuit.py``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from payerbridge.errors import PartnerAuthRejected, PartnerUnavailable, PayerBridgeError
from payerbridge.exchange.budgets import exchange_deadline
from payerbridge.exchange.calls.breaker import settle_seconds
from payerbridge.exchange.calls.circuit import admit_call, probe_interval, record_outcome
from payerbridge.exchange.calls.partner_calls import (
    ANSWERED,
    REFUSED,
    UNAVAILABLE,
    PartnerCall,
    partner_call_event,
)
from payerbridge.exchange.calls.retry import (
    Deadlines,
    FailedCall,
    RetryDecision,
    decide_retry,
    decide_wait,
    first_deadline,
    is_last_call,
)
from payerbridge.exchange.model import (
    Attempt,
    DeadLetter,
    ExchangeRecord,
    ExchangeState,
    Move,
    RetryPolicy,
)
from payerbridge.exchange.moves import (
    Advance,
    StepResult,
    StepRun,
    note_attempt,
    record_moves,
)
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.routing.model import Partner
from payerbridge.timestamps import utc_iso
from payerbridge.types import ExchangeId

__all__ = [
    "CallOutcome",
    "StepClock",
    "admit_call",
    "after_failed_call",
    "WAIT_REASONS",
    "call_partner",
    "dead_letter",
    "idempotency_key",
    "record_outcome",
    "step_clock",
    "wait_reason",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

PARKED_FOR_BREAKER = (
    "parked: the partner's circuit breaker is open; the exchange resumes when the "
    "breaker's probe finds the partner answering"
)
_IN_MAINTENANCE = "the partner is in its maintenance window until "
_RATE_LIMITED = "the partner takes "
# Why a waiting exchange waits, as ``wait_reason`` reads it from its row.
WAIT_REASONS = (
    ExchangeReason.CIRCUIT_OPEN.value,
    ExchangeReason.MAINTENANCE.value,
    ExchangeReason.RATE_LIMITED.value,
    ExchangeReason.PARTNER_UNAVAILABLE.value,
)


def wait_reason(last_error: str | None) -> str:
    """Why an exchange waiting for its next attempt waits, from the text its row keeps
    (``last_error``): parked on the breaker, in the partner's maintenance window, under
    its rate limit, or after a call the partner did not answer."""
    text = last_error or ""
    if text == PARKED_FOR_BREAKER:
        return ExchangeReason.CIRCUIT_OPEN.value
    if text.startswith(_IN_MAINTENANCE):
        return ExchangeReason.MAINTENANCE.value
    if text.startswith(_RATE_LIMITED):
        return ExchangeReason.RATE_LIMITED.value
    return ExchangeReason.PARTNER_UNAVAILABLE.value


@dataclass(frozen=True)
class StepClock:
    """The attempt being made, when its step began and the deadlines it runs under (the
    step's own only when a step budget is set); ``waiting``: why the row says this step's
    call waited last (its ``last_error``), to tell a renewed park from a new one. The
    exchange and the partner it calls ride along: every wait and dead letter names them."""

    exchange_id: ExchangeId
    partner: Partner
    step: str
    attempt: int
    started: datetime
    deadlines: Deadlines
    waiting: str | None = None

    def is_last_call(self, policy: RetryPolicy, now: datetime) -> bool:
        """Whether the call about to go would have no retry if it failed."""
        return is_last_call(policy, self.deadlines, attempt=self.attempt, now=now)


@dataclass(frozen=True)
class CallOutcome(Generic[T]):
    """Exactly one of: the partner's answer, a time to retry at, or dead-lettered."""

    value: T | None = None
    retry_at: datetime | None = None
    dead_lettered: bool = False
    call: PartnerCall | None = None  # the call made, if one went out
    # The calls to endpoints that did not answer before ``call``'s did (ADR 0060).
    failed_over: tuple[PartnerCall, ...] = ()

    def calls_detail(self) -> dict[str, Any]:
        """The calls as a move's detail keeps them (``call``, and ``failed_over``)."""
        if self.call is None:
            return {}
        tried = {"failed_over": [c.to_json() for c in self.failed_over]} if self.failed_over else {}
        return {"call": self.call.to_json(), **tried}


def step_clock(uow: ExchangeUnit, run: StepRun, step: str) -> StepClock:
    """The deadlines of the run's attempt of the exchange's ``step``."""
    policy, record, started = uow.retry_policy, run.record, run.started
    deadline = record.deadline_at or exchange_deadline(uow, None, record.created_at)
    budget = policy.step_budget_seconds
    return StepClock(
        exchange_id=record.id,
        partner=run.partner,
        step=step,
        attempt=run.attempt,
        started=started,
        deadlines=Deadlines(
            deadline, started + timedelta(seconds=budget) if budget is not None else None
        ),
        waiting=record.last_error if record.current_step == step else None,
    )


def idempotency_key(record: ExchangeRecord, step: str) -> str:
    """Stable per exchange and step, so the partner recognises a retried call; a replay
    is a new request and gets its own key."""
    suffix = f":replay-{record.replay_count}" if record.replay_count else ""
    return f"{record.id}:{step}{suffix}"


def after_failed_call(outcome: CallOutcome[Any], state: ExchangeState) -> StepResult:
    """What the step says when its call brought no answer: stopped, or run again later."""
    if outcome.dead_lettered:
        return StepResult(ExchangeState.DEAD_LETTERED, done=True)
    return StepResult(state, retry_at=outcome.retry_at)


def call_partner(
    uow: ExchangeUnit, clock: StepClock, call: Callable[[Partner, float], T]
) -> CallOutcome[T]:
    """Make one attempt of ``call(partner at an endpoint, timeout)``: at the partner's
    first endpoint its breaker lets through and, when that one does not answer, at the
    next (ADR 0060), within the deadline. Partner answers that are not failures (no
    match, consent refused, a contract error) propagate to the step unchanged."""
    exchange_id, partner = clock.exchange_id, clock.partner
    now = uow.clock()
    deadline, reason = first_deadline(clock.deadlines)
    if (deadline - now).total_seconds() <= 0:  # this attempt never goes out
        last = clock.waiting or "no call was made"
        return dead_letter(uow, clock, reason, last, clock.attempt - 1)
    held = _announced_hold(uow, partner, now)
    if held is not None:  # not a failure: it waits, and spends no attempt
        return _park(uow, clock, *held)
    failed: list[tuple[PartnerCall, PartnerUnavailable]] = []
    probes: list[datetime] = []  # when each endpoint held back by its breaker may be tried
    windows: list[tuple[datetime, str]] = []  # endpoints in their own maintenance windows
    for endpoint in partner.call_order():
        at = partner.at(endpoint)
        if (window := partner.operations.in_maintenance(now, endpoint.base)) is not None:
            windows.append(window)
            continue
        admission = admit_call(uow, at, uow.clock())
        if not admission.allowed:
            probes.extend([admission.retry_at] if admission.retry_at else [])
            continue
        remaining = (deadline - uow.clock()).total_seconds()
        if remaining <= 0:
            break
        timeout = min(uow.retry_policy.call_timeout_seconds, remaining)
        sent = _Sent(clock, at, uow.clock())
        try:
            value = _call_once(uow, at, call, timeout)
        except PartnerUnavailable as exc:
            record_outcome(uow, at, succeeded=False, seen=admission.state)
            failed.append((_made(uow, sent, UNAVAILABLE, exc), exc))
            continue
        except Exception as exc:  # it answered: the endpoint is up
            record_outcome(uow, at, succeeded=True, seen=admission.state)
            if isinstance(exc, PayerBridgeError):  # a refusal: its own event, then its move
                made = _made(uow, sent, REFUSED, exc)
                uow.audit.record(partner_call_event(exchange_id, made, _calls(failed)))
            raise
        record_outcome(uow, at, succeeded=True, seen=admission.state)
        answered = _made(uow, sent, ANSWERED)
        return CallOutcome(value=value, call=answered, failed_over=_calls(failed))
    if failed:
        made, error = failed[-1]
        return _retry_later(uow, clock, error, made, _calls(failed[:-1]))
    # Every endpoint is held: wait for the first to be free (a window's end, a probe).
    until = min(probes) if probes else None
    if windows and (until is None or min(windows)[0] < until):
        end, why = min(windows)
        text = f"{_IN_MAINTENANCE}{end.isoformat()} ({why})"
        return _park(uow, clock, ExchangeReason.MAINTENANCE, text, end)
    return _park(uow, clock, ExchangeReason.CIRCUIT_OPEN, PARKED_FOR_BREAKER, until)


def _call_once(
    uow: ExchangeUnit, at: Partner, call: Callable[[Partner, float], T], timeout: float
) -> T:
    try:
        return call(at, timeout)
    except PartnerAuthRejected:
        uow.client.refresh_credentials(at)  # needs-revalidation: exactly one more try
        return call(at, timeout)


def _calls(failed: list[tuple[PartnerCall, PartnerUnavailable]]) -> tuple[PartnerCall, ...]:
    return tuple(made for made, _ in failed)


@dataclass(frozen=True)
class _Sent:
    """A call of the step's attempt, sent ``at`` an endpoint of the partner, when."""

    clock: StepClock
    at: Partner
    when: datetime


def _made(
    uow: ExchangeUnit, sent: _Sent, outcome: str, error: Exception | None = None
) -> PartnerCall:
    """The call ``sent``, as it ended now; an answer taken was HTTP 200."""
    latency = uow.clock() - sent.when
    return PartnerCall(
        step=sent.clock.step,
        attempt=sent.clock.attempt,
        endpoint=sent.at.fhir_base,
        at=sent.when,
        latency_ms=max(0, round(latency.total_seconds() * 1000)),
        outcome=outcome,
        status=200 if error is None else getattr(error, "status", None),
        error=None if error is None else type(error).__name__,
    )


def _announced_hold(
    uow: ExchangeUnit, partner: Partner, now: datetime
) -> tuple[str, str, datetime] | None:
    """What the partner announced holds a call back now (its maintenance window, then
    its rate limit, whose turn this takes when free): the reason, its text and until
    when; None when the call may go."""
    maintenance = partner.operations.in_maintenance(now)
    if maintenance is not None:
        until, why = maintenance
        text = f"{_IN_MAINTENANCE}{until.isoformat()} ({why})"
        return ExchangeReason.MAINTENANCE, text, until
    limit = partner.operations.rate_limit
    if limit is None:
        return None
    with uow:
        turn = uow.breakers.admit_rate(partner.id, limit, now=now)
    if turn is None:
        return None
    text = f"{_RATE_LIMITED}{limit.requests} calls per {limit.per_seconds:g} s"
    return ExchangeReason.RATE_LIMITED, text, turn


def _park(
    uow: ExchangeUnit, clock: StepClock, reason: str, text: str, until: datetime | None
) -> CallOutcome[Any]:
    """The call waits for what holds it back (``until``), spending no attempt: the
    exchange looks again then (a parked exchange on the breaker: its next probe, spread
    a little), or is dead-lettered when its deadline comes first."""
    now = uow.clock()
    spread = settle_seconds(probe_interval(uow)) if reason == ExchangeReason.CIRCUIT_OPEN else 0
    decision = decide_wait(
        clock.deadlines,
        until=until,
        now=now,
        spread_seconds=spread,
        unit_random=uow.random(),
    )
    renewed = clock.waiting == text  # the same park, looked at again: no new event
    detail = {"reason": reason, "parked": True, "partner_id": clock.partner.id}
    return _note_wait(uow, clock, _Wait(decision, text, detail, attempted=False, quiet=renewed))


def _retry_later(
    uow: ExchangeUnit,
    clock: StepClock,
    error: PartnerUnavailable,
    call: PartnerCall,
    before: tuple[PartnerCall, ...],
) -> CallOutcome[Any]:
    """The call went out and the partner did not answer at any endpoint (``call`` the
    last, ``before`` the others): tried again after the backoff, within the deadline, or
    dead-lettered."""
    now = uow.clock()
    failed = FailedCall(clock.attempt, clock.started, error.retry_after)
    decision = decide_retry(
        uow.retry_policy, failed, clock.deadlines, now=now, unit_random=uow.random()
    )
    detail = {
        "reason": ExchangeReason.PARTNER_UNAVAILABLE,
        "partner_id": clock.partner.id,
        "retry_after": error.retry_after,
        "call": call.to_json(),
        **({"failed_over": [c.to_json() for c in before]} if before else {}),
    }
    return _note_wait(uow, clock, _Wait(decision, error.text, detail))


@dataclass(frozen=True)
class _Wait:
    """A call's wait as decided: its text and audit detail; ``attempted`` when a call went
    out (a park spends no attempt), ``quiet`` when it renews the same park (no event)."""

    decision: RetryDecision
    text: str
    detail: dict[str, Any]
    attempted: bool = True
    quiet: bool = False


def _note_wait(uow: ExchangeUnit, clock: StepClock, wait: _Wait) -> CallOutcome[Any]:
    """The wait on the exchange's row, audited (``exchange.attempt``: why, when it looks
    again, its deadline) unless ``quiet``; or the dead letter when there is none."""
    now = uow.clock()
    exchange_id, decision, text = clock.exchange_id, wait.decision, wait.text
    calls = clock.attempt if wait.attempted else clock.attempt - 1
    retry_at = decision.retry_at
    detail = wait.detail | {
        "next_attempt_at": utc_iso(retry_at) if retry_at else None,
        "deadline_at": utc_iso(clock.deadlines.exchange),
    }
    attempt = Attempt(
        step=clock.step,
        attempts=calls,
        next_attempt_at=retry_at,
        step_started_at=clock.started,
        last_error=text,
        detail=detail,
    )
    with uow:
        if wait.quiet and retry_at is not None:
            uow.exchanges.record_attempt(exchange_id, attempt, at=now)
        else:
            note_attempt(uow, exchange_id, attempt, at=now)
    if retry_at is None:
        assert decision.give_up_reason is not None
        give_up = decision.give_up_reason
        return dead_letter(uow, clock, give_up, text, calls)
    logger.info(
        "exchange step will retry",
        extra={
            "exchange_id": exchange_id,
            "step": clock.step,
            "attempts": calls,
            "reason": detail["reason"],
        },
    )
    return CallOutcome(retry_at=retry_at)


def dead_letter(
    uow: ExchangeUnit, clock: StepClock, reason_code: str, last_error: str, attempts: int
) -> CallOutcome[Any]:
    """File the exchange as dead-lettered, with what a replay needs, in one transaction;
    ``attempts``: the calls the step made."""
    exchange_id, partner = clock.exchange_id, clock.partner
    record = uow.exchanges.current(exchange_id)
    now = uow.clock()
    letter = DeadLetter(
        exchange_id=exchange_id,
        step=clock.step,
        reason_code=reason_code,
        last_error=last_error,
        attempts=attempts,
        policy_snapshot={
            "retry": uow.retry_policy.snapshot(),
            "consent_policy": (record.request.get("consent") or {}).get("policy"),
        },
        last_route={"partner_id": partner.id, "endpoint": partner.fhir_base},
        request_sha256=record.request_hash,
        payload_sha256=uow.exchanges.payload_sha256(exchange_id),
        dead_lettered_at=now,
    )
    stop = {
        "error_code": reason_code,
        "error_text": _gave_up(reason_code, clock, last_error, attempts),
        "next_attempt_at": None,
    }
    detail = {
        "step": clock.step,
        "attempts": attempts,
        "deadline_at": utc_iso(clock.deadlines.exchange),
        "last_error": last_error,
    }
    moves = [Move(ExchangeState.DEAD_LETTERED, reason_code, detail, stop)]
    with uow:
        uow.exchanges.file_dead_letter(letter)
        record_moves(uow, Advance(exchange_id, moves, now))
    logger.warning(
        "exchange dead-lettered",
        extra={"exchange_id": exchange_id, "step": clock.step, "reason_code": reason_code},
    )
    return CallOutcome(dead_lettered=True)


def _gave_up(reason_code: str, clock: StepClock, last_error: str, attempts: int) -> str:
    """Why the step gave up, as the exchange's ``error.text`` says it."""
    if reason_code == ExchangeReason.DEADLINE_EXCEEDED:
        why = (
            f"its deadline ({utc_iso(clock.deadlines.exchange)}) passed, or left no time for "
            "another call, with the partner still not answering"
        )
    elif reason_code == ExchangeReason.BUDGET_EXHAUSTED and clock.deadlines.step is not None:
        why = f"the step's own budget ran out at {utc_iso(clock.deadlines.step)}"
    elif reason_code == ExchangeReason.ATTEMPTS_EXHAUSTED:
        why = f"it made {attempts} calls, the most a step may"
    else:
        why = reason_code
    return f"the {clock.step} step gave up: {why}; last: {last_error}"
