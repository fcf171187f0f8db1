"""One outbound partner call of an exchange step, inside its budgets and the endpoint's breaker.

``call_partner`` makes at most one attempt (two when credentials need refreshing)
and reports what the step should do next: use the answer, wait and try again, or
stop because the exchange was dead-lettered. The durable workflow does the waiting
(``DBOS.sleep``), so a worker crash between attempts loses nothing.

The endpoint's breaker is read before the call and moved after it (``admit_call``,
``record_outcome``): a healthy one only read, any other change of it one transaction that
holds its row, with the audit event of a change of status.

An attempt is a call that went out. A call the open breaker, the partner's maintenance
window or its announced rate limit holds back waits for it within the time budgets but
spends no attempt: otherwise one short outage would dead-letter every exchange in flight to that
partner without any of them calling.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from payerbridge.errors import PartnerAuthRejected, PartnerUnavailable, PayerBridgeError
from payerbridge.exchange.breaker import (
    Admission,
    BreakerState,
    BreakerStatus,
    admit,
    breaker_event,
    record_failure,
    record_success,
)
from payerbridge.exchange.model import Attempt, DeadLetter, ExchangeRecord, ExchangeState, Move
from payerbridge.exchange.moves import SYSTEM_ACTOR, StepResult, note_attempt, record_moves
from payerbridge.exchange.partner_calls import (
    ANSWERED,
    REFUSED,
    UNAVAILABLE,
    PartnerCall,
    partner_call_event,
)
from payerbridge.exchange.ports import ExchangePorts, UnitOfWork
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.exchange.retry import RetryPolicy, decide_retry
from payerbridge.routing.model import Partner
from payerbridge.types import ExchangeId, PartnerId

__all__ = [
    "CallOutcome",
    "StepClock",
    "admit_call",
    "after_failed_call",
    "call_partner",
    "dead_letter",
    "idempotency_key",
    "record_outcome",
    "step_clock",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class StepClock:
    """The attempt being made, when its step began and the deadlines it runs under."""

    step: str
    attempt: int
    started: datetime
    step_deadline: datetime
    exchange_deadline: datetime


@dataclass(frozen=True)
class CallOutcome(Generic[T]):
    """Exactly one of: the partner's answer, a time to retry at, or dead-lettered."""

    value: T | None = None
    retry_at: datetime | None = None
    dead_lettered: bool = False
    call: PartnerCall | None = None  # the call made, if one went out


def step_clock(
    ports: ExchangePorts, record: ExchangeRecord, step: str, attempt: int, started: datetime
) -> StepClock:
    """The deadlines of ``attempt`` of the exchange's ``step``, begun at ``started``."""
    deadline = record.deadline_at or record.created_at + timedelta(
        seconds=ports.retry_policy.exchange_budget_seconds
    )
    return StepClock(
        step=step,
        attempt=attempt,
        started=started,
        step_deadline=started + timedelta(seconds=ports.retry_policy.step_budget_seconds),
        exchange_deadline=deadline,
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
    ports: ExchangePorts,
    exchange_id: ExchangeId,
    partner: Partner,
    clock: StepClock,
    call: Callable[[float], T],
) -> CallOutcome[T]:
    """Make one attempt of ``call(timeout)``; partner answers that are not failures
    (no match, consent refused, a contract error) propagate to the step unchanged."""
    policy: RetryPolicy = ports.retry_policy
    now = ports.clock()
    remaining = (min(clock.step_deadline, clock.exchange_deadline) - now).total_seconds()
    if remaining <= 0:
        calls = clock.attempt - 1  # this attempt never went out
        return dead_letter(
            ports,
            exchange_id,
            partner,
            clock,
            ExchangeReason.BUDGET_EXHAUSTED,
            "time ran out",
            calls,
        )
    held: tuple[str, str, datetime | None] | None = _announced_hold(ports, partner, now)
    if held is None:  # then the endpoint's breaker, whose state the outcome is recorded on
        admission = admit_call(ports, partner, now)
        if not admission.allowed:
            held = (ExchangeReason.CIRCUIT_OPEN, "the circuit is open", admission.retry_at)
    if held is not None:  # not a failure: it waits, and spends no attempt
        reason, text, until = held
        wait = (until - now).total_seconds() if until else None
        return _retry_later(ports, exchange_id, partner, clock, reason, text, wait, attempted=False)
    timeout = min(policy.call_timeout_seconds, remaining)
    sent = ports.clock()
    try:
        try:
            value = call(timeout)
        except PartnerAuthRejected:
            ports.client.refresh_credentials(partner)  # needs-revalidation: exactly one more try
            value = call(timeout)
    except PartnerUnavailable as exc:
        record_outcome(ports, partner, succeeded=False, seen=admission.state)
        made = _made(ports, partner, clock, sent, UNAVAILABLE, exc)
        return _retry_later(
            ports,
            exchange_id,
            partner,
            clock,
            ExchangeReason.PARTNER_UNAVAILABLE,
            exc.text,
            exc.retry_after,
            call=made,
        )
    except Exception as exc:  # it answered: the endpoint is up
        record_outcome(ports, partner, succeeded=True, seen=admission.state)
        if isinstance(exc, PayerBridgeError):  # a refusal: its own event, then its move
            ports.audit.record(
                partner_call_event(exchange_id, _made(ports, partner, clock, sent, REFUSED, exc))
            )
        raise
    record_outcome(ports, partner, succeeded=True, seen=admission.state)
    return CallOutcome(value=value, call=_made(ports, partner, clock, sent, ANSWERED))


def _made(
    ports: ExchangePorts,
    partner: Partner,
    clock: StepClock,
    sent: datetime,
    outcome: str,
    error: Exception | None = None,
) -> PartnerCall:
    """The call sent at ``sent``, as it ended now; an answer taken was HTTP 200."""
    latency = ports.clock() - sent
    return PartnerCall(
        step=clock.step,
        attempt=clock.attempt,
        endpoint=partner.fhir_base,
        at=sent,
        latency_ms=max(0, round(latency.total_seconds() * 1000)),
        outcome=outcome,
        status=200 if error is None else getattr(error, "status", None),
        error=None if error is None else type(error).__name__,
    )


def _announced_hold(
    ports: ExchangePorts, partner: Partner, now: datetime
) -> tuple[str, str, datetime] | None:
    """What the partner announced holds a call back now (its maintenance window, then
    its rate limit, whose turn this takes when free): the reason, its text and until
    when; None when the call may go."""
    maintenance = partner.operations.in_maintenance(now)
    if maintenance is not None:
        until, why = maintenance
        text = f"the partner is in its maintenance window until {until.isoformat()} ({why})"
        return ExchangeReason.MAINTENANCE, text, until
    limit = partner.operations.rate_limit
    if limit is None:
        return None
    with ports.transactions.begin() as unit:
        turn = ports.breakers.admit_rate(unit, partner.id, limit, now=now)
    if turn is None:
        return None
    text = f"the partner takes {limit.requests} calls per {limit.per_seconds:g} s"
    return ExchangeReason.RATE_LIMITED, text, turn


def admit_call(ports: ExchangePorts, partner: Partner, now: datetime) -> Admission:
    """Whether the endpoint's breaker lets a call go now. A closed breaker is only read;
    any other is moved (to half-open for a probe) under its row's lock."""
    endpoint = partner.fhir_base
    current = ports.breakers.get(endpoint)
    if current.status is BreakerStatus.CLOSED:  # the common case needs no write lock
        return Admission(True, current)
    cooldown = timedelta(seconds=ports.retry_policy.breaker_cooldown_seconds)
    with ports.transactions.begin() as unit:
        before = ports.breakers.lock(unit, endpoint, partner.id, at=now)
        admission = admit(before, now, cooldown)
        _keep(unit, ports, endpoint, partner.id, before, admission.state, now)
    return admission


def record_outcome(
    ports: ExchangePorts, partner: Partner, *, succeeded: bool, seen: BreakerState | None = None
) -> None:
    """The call's outcome on the endpoint's breaker; ``seen``: the state the call was
    admitted under. A success admitted under a healthy breaker writes (and reads) nothing:
    failures other calls recorded meanwhile are left to count, which can only open the
    breaker a call earlier."""
    healthy = BreakerState()
    endpoint = partner.fhir_base
    if succeeded and (seen == healthy or ports.breakers.get(endpoint) == healthy):
        return  # healthy and staying so: nothing to write
    policy: RetryPolicy = ports.retry_policy
    now = ports.clock()
    with ports.transactions.begin() as unit:
        before = ports.breakers.lock(unit, endpoint, partner.id, at=now)
        if succeeded:
            after = record_success(before)
        else:
            cooldown = timedelta(seconds=policy.breaker_cooldown_seconds)
            threshold = policy.breaker_failure_threshold
            after = record_failure(before, now, threshold=threshold, cooldown=cooldown)
        _keep(unit, ports, endpoint, partner.id, before, after, now)


def _keep(
    unit: UnitOfWork,
    ports: ExchangePorts,
    endpoint: str,
    partner_id: PartnerId,
    before: BreakerState,
    after: BreakerState,
    at: datetime,
) -> None:
    """The breaker moved ``before`` → ``after`` in ``unit``, audited when its status changed."""
    if after == before:
        return
    ports.breakers.save(unit, endpoint, partner_id, after, at=at)
    if after.status is not before.status:
        unit.record(breaker_event(endpoint, partner_id, before, after, at=at))


def _retry_later(
    ports: ExchangePorts,
    exchange_id: ExchangeId,
    partner: Partner,
    clock: StepClock,
    reason: str,
    text: str,
    retry_after: float | None,
    *,
    attempted: bool = True,
    call: PartnerCall | None = None,
) -> CallOutcome[Any]:
    now = ports.clock()
    calls = clock.attempt if attempted else clock.attempt - 1
    decision = decide_retry(
        ports.retry_policy,
        attempt=calls,
        now=now,
        step_deadline=clock.step_deadline,
        exchange_deadline=clock.exchange_deadline,
        retry_after_seconds=retry_after,
        unit_random=ports.random(),
    )
    attempt = Attempt(
        step=clock.step,
        attempts=calls,
        next_attempt_at=decision.retry_at,
        step_started_at=clock.started,
        last_error=text,
        detail={
            "reason": reason,
            "partner_id": partner.id,
            "retry_after": retry_after,
            **({"call": call.to_json()} if call else {}),
        },
    )
    with ports.transactions.begin() as unit:
        note_attempt(unit, ports, exchange_id, attempt, at=now)
    if decision.retry_at is None:
        assert decision.give_up_reason is not None
        give_up = decision.give_up_reason
        return dead_letter(ports, exchange_id, partner, clock, give_up, text, calls)
    logger.info(
        "exchange step will retry",
        extra={
            "exchange_id": exchange_id,
            "step": clock.step,
            "attempts": calls,
            "reason": reason,
        },
    )
    return CallOutcome(retry_at=decision.retry_at)


def dead_letter(
    ports: ExchangePorts,
    exchange_id: ExchangeId,
    partner: Partner,
    clock: StepClock,
    reason_code: str,
    last_error: str,
    attempts: int,
) -> CallOutcome[Any]:
    """File the exchange as dead-lettered, with what a replay needs, in one transaction;
    ``attempts``: the calls the step made."""
    record = ports.exchanges.current(exchange_id)
    now = ports.clock()
    letter = DeadLetter(
        exchange_id=exchange_id,
        step=clock.step,
        reason_code=reason_code,
        last_error=last_error,
        attempts=attempts,
        policy_snapshot={
            "retry": ports.retry_policy.snapshot(),
            "consent_policy": (record.request.get("consent") or {}).get("policy"),
        },
        last_route={"partner_id": partner.id, "endpoint": partner.fhir_base},
        request_sha256=record.request_hash,
        payload_sha256=ports.exchanges.payload_sha256(exchange_id),
        dead_lettered_at=now,
    )
    stop = {
        "error_code": reason_code,
        "error_text": f"the {clock.step} step gave up: {last_error}",
        "next_attempt_at": None,
    }
    moves = [
        Move(
            ExchangeState.DEAD_LETTERED,
            reason_code,
            {"step": clock.step, "attempts": attempts},
            stop,
        )
    ]
    with ports.transactions.begin() as unit:
        ports.exchanges.file_dead_letter(unit, letter)
        record_moves(unit, ports, exchange_id, moves, at=now, actor=SYSTEM_ACTOR)
    logger.warning(
        "exchange dead-lettered",
        extra={"exchange_id": exchange_id, "step": clock.step, "reason_code": reason_code},
    )
    return CallOutcome(dead_lettered=True)
