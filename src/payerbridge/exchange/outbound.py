"""One outbound partner call of an exchange step, inside its budgets and the endpoint's breaker.

``call_partner`` makes at most one attempt (two when credentials need refreshing)
and reports what the step should do next: use the answer, wait and try again, or
stop because the exchange was dead-lettered. The durable workflow does the waiting
(``DBOS.sleep``), so a worker crash between attempts loses nothing.

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

from payerbridge.errors import PartnerAuthRejected, PartnerUnavailable
from payerbridge.exchange.breaker import BreakerState
from payerbridge.exchange.model import DeadLetter, ExchangeState, Move
from payerbridge.exchange.ports import ExchangePorts
from payerbridge.exchange.retry import RetryPolicy, decide_retry
from payerbridge.routing.model import Partner
from payerbridge.types import ExchangeId

__all__ = ["CallOutcome", "StepClock", "call_partner", "dead_letter"]

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
            ports, exchange_id, partner, clock, "budget-exhausted", "time ran out", calls
        )
    endpoint = partner.fhir_base
    held: tuple[str, str, datetime | None] | None = _announced_hold(ports, partner, now)
    if held is None:  # then the endpoint's breaker, whose state the outcome is recorded on
        cooldown = timedelta(seconds=policy.breaker_cooldown_seconds)
        admission = ports.breakers.admit(endpoint, partner.id, now=now, cooldown=cooldown)
        if not admission.allowed:
            held = ("circuit-open", "the circuit is open", admission.retry_at)
    if held is not None:  # not a failure: it waits, and spends no attempt
        reason, text, until = held
        wait = (until - now).total_seconds() if until else None
        return _retry_later(ports, exchange_id, partner, clock, reason, text, wait, attempted=False)
    timeout = min(policy.call_timeout_seconds, remaining)
    try:
        try:
            value = call(timeout)
        except PartnerAuthRejected:
            ports.client.refresh_credentials(partner)  # needs-revalidation: exactly one more try
            value = call(timeout)
    except PartnerUnavailable as exc:
        _record(ports, endpoint, partner, succeeded=False, seen=admission.state)
        return _retry_later(
            ports, exchange_id, partner, clock, "partner-unavailable", exc.text, exc.retry_after
        )
    except Exception:  # it answered: the endpoint is up
        _record(ports, endpoint, partner, succeeded=True, seen=admission.state)
        raise
    _record(ports, endpoint, partner, succeeded=True, seen=admission.state)
    return CallOutcome(value=value)


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
        return "maintenance", text, until
    limit = partner.operations.rate_limit
    turn = ports.breakers.admit_rate(partner.id, limit, now=now) if limit else None
    if turn is not None and limit is not None:
        return (
            "rate-limited",
            f"the partner takes {limit.requests} calls per {limit.per_seconds:g} s",
            turn,
        )
    return None


def _record(
    ports: ExchangePorts,
    endpoint: str,
    partner: Partner,
    *,
    succeeded: bool,
    seen: BreakerState,
) -> None:
    policy: RetryPolicy = ports.retry_policy
    ports.breakers.record(
        endpoint,
        partner.id,
        succeeded=succeeded,
        now=ports.clock(),
        threshold=policy.breaker_failure_threshold,
        cooldown=timedelta(seconds=policy.breaker_cooldown_seconds),
        seen=seen,
    )


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
    with ports.transactions.begin() as unit:
        ports.exchanges.record_attempt(
            unit,
            exchange_id,
            step=clock.step,
            attempts=calls,
            next_attempt_at=decision.retry_at,
            step_started_at=clock.started,
            last_error=text,
            at=now,
            detail={"reason": reason, "partner_id": partner.id, "retry_after": retry_after},
        )
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
    detail = {"step": clock.step, "attempts": attempts}
    with ports.transactions.begin() as unit:
        ports.exchanges.file_dead_letter(unit, letter)
        ports.exchanges.advance(
            unit,
            exchange_id,
            [Move(ExchangeState.DEAD_LETTERED, reason_code, detail, stop)],
            at=now,
            actor="payerbridge",
            policy_version=ports.retry_policy.version,
        )
    logger.warning(
        "exchange dead-lettered",
        extra={"exchange_id": exchange_id, "step": clock.step, "reason_code": reason_code},
    )
    return CallOutcome(dead_lettered=True)
