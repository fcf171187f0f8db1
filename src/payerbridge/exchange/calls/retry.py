"""How an exchange step reacts to a partner failure (pure: no I/O, no clock, no randomness).

Every partner failure falls in one class:

- ``retryable``: connection errors, timeouts, 429, 500/502/503/504. Tried again until the
  exchange's deadline (time budgets, not attempt counts): after a backoff that grows
  with each call and with the time already waited, equal-jittered, never sooner than the
  partner's ``Retry-After``, and never so late that a call could not end before the
  deadline. A partner down for minutes costs an exchange time, not its chance.
- ``revalidate``: 401/403. Credentials are refreshed and the call is tried once more;
  a second refusal is terminal.
- ``terminal``: other 4xx, contract and schema errors. Never retried.

A call held back (the endpoint's open breaker, the partner's maintenance window or its
rate limit) is not a failure: it waits (``decide_wait``) and spends no attempt. An
exchange gives up (is dead-lettered) only when its deadline has passed or leaves no time
for another call (``deadline-exceeded``), on a terminal error, or at the limits an
operator may set besides: attempts per step (``attempts-exhausted``) and a step's own
budget (``budget-exhausted``); both are off by default.

Consent and identity outcomes (no match, multiple matches, consent refused) are
answers, not failures: the service turns them into ``failed``/``blocked`` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Protocol

from payerbridge.exchange.model import RetryPolicy
from payerbridge.exchange.reasons import ExchangeReason

__all__ = [
    "retry_after_seconds",
    "Backoff",
    "Deadlines",
    "FailedCall",
    "FailureClass",
    "RetryDecision",
    "backoff_ceiling",
    "backoff_delay",
    "classify_status",
    "decide_retry",
    "decide_wait",
    "first_deadline",
    "full_jitter_delay",
    "is_last_call",
    "last_call",
]


class FailureClass(StrEnum):
    RETRYABLE = "retryable"
    REVALIDATE = "revalidate"
    TERMINAL = "terminal"


_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def classify_status(status: int) -> FailureClass:
    """Class of a partner's non-success HTTP status (500 counts as retryable: every call
    carries an idempotency key, so repeating it cannot duplicate a side effect)."""
    if status in _RETRYABLE_STATUSES:
        return FailureClass.RETRYABLE
    if status in (401, 403):
        return FailureClass.REVALIDATE
    return FailureClass.TERMINAL


class Backoff(Protocol):
    """What full jitter needs of a policy (``RetryPolicy``, ``WebhookPolicy``)."""

    @property
    def base_delay_seconds(self) -> float: ...

    @property
    def max_delay_seconds(self) -> float: ...


def full_jitter_delay(policy: Backoff, attempt: int, unit_random: float) -> float:
    """AWS-style full jitter: uniform in [0, min(cap, base·2^(attempt-1))].

    ``unit_random`` in [0, 1) is drawn by the caller, so this stays deterministic."""
    ceiling = min(policy.max_delay_seconds, policy.base_delay_seconds * 2.0 ** (attempt - 1))
    return ceiling * unit_random


def backoff_ceiling(policy: RetryPolicy, attempt: int, waited_seconds: float) -> float:
    """The longest wait after failed call number ``attempt`` of a step that has waited
    ``waited_seconds`` so far: exponential up to ``max_delay``, then a tenth (the growth)
    of the time waited, at most ``longest_delay``. Never shrinks as either grows."""
    exponential = policy.base_delay_seconds * 2.0 ** min(max(attempt - 1, 0), 64)
    grown = policy.backoff_growth * max(waited_seconds, 0.0)
    return min(policy.longest_delay_seconds, max(min(policy.max_delay_seconds, exponential), grown))


def backoff_delay(
    policy: RetryPolicy, attempt: int, waited_seconds: float, unit_random: float
) -> float:
    """Equal jitter on the ceiling: uniform in [ceiling/2, ceiling], so the waits spread
    out (and their spread grows) but never fall back to nothing as the deadline nears."""
    ceiling = backoff_ceiling(policy, attempt, waited_seconds)
    return ceiling * (0.5 + unit_random / 2)


@dataclass(frozen=True)
class RetryDecision:
    """``retry_at`` when the step should run again; otherwise ``give_up_reason``."""

    retry_at: datetime | None
    give_up_reason: str | None


@dataclass(frozen=True)
class Deadlines:
    """What a step's calls run under: the exchange's deadline, and the step's own budget
    when one is set (None: none)."""

    exchange: datetime
    step: datetime | None = None


@dataclass(frozen=True)
class FailedCall:
    """A retryable failure: the step's call number ``attempt`` since the step began at
    ``started``, and the wait the partner asked for (its ``Retry-After``), if any."""

    attempt: int
    started: datetime
    retry_after_seconds: float | None = None


def first_deadline(deadlines: Deadlines) -> tuple[datetime, str]:
    """The deadline that comes first, and the reason code of missing it: the step's own
    budget (``budget-exhausted``), when one is set and ends sooner, else the exchange's
    (``deadline-exceeded``)."""
    step = deadlines.step
    if step is not None and step < deadlines.exchange:
        return step, ExchangeReason.BUDGET_EXHAUSTED
    return deadlines.exchange, ExchangeReason.DEADLINE_EXCEEDED


def decide_retry(
    policy: RetryPolicy,
    failed: FailedCall,
    deadlines: Deadlines,
    *,
    now: datetime,
    unit_random: float,
) -> RetryDecision:
    """After a retryable failure: when to call again, or why not.

    The next call is due after the backoff, at least ``Retry-After``, and no later than
    the last moment a call is still worth making before the deadline (``last_call``):
    the final try is made, not skipped. Gives up when the failed call was already that
    last one, or the partner asks us to wait past it."""
    attempt = failed.attempt
    if policy.max_attempts is not None and attempt >= policy.max_attempts:
        return RetryDecision(None, ExchangeReason.ATTEMPTS_EXHAUSTED)
    deadline, reason = first_deadline(deadlines)
    latest = deadline - last_call(policy)
    asked = timedelta(seconds=failed.retry_after_seconds or 0.0)
    if now >= latest or now + asked > latest:
        return RetryDecision(None, reason)
    waited = (now - failed.started).total_seconds()
    delay = timedelta(seconds=backoff_delay(policy, attempt, waited, unit_random))
    return RetryDecision(min(now + max(delay, asked), latest), None)


def decide_wait(
    deadlines: Deadlines,
    *,
    until: datetime | None,
    now: datetime,
    spread_seconds: float,
    unit_random: float,
) -> RetryDecision:
    """A call held back (the open breaker, a maintenance window, the rate limit) waits
    until ``until``, later by up to ``spread_seconds`` so that the exchanges parked on one
    breaker do not all wake at once, and never past the deadline: one that reaches it
    still held back gives up there."""
    deadline, reason = first_deadline(deadlines)
    if now >= deadline:
        return RetryDecision(None, reason)
    wake = (until or now) + timedelta(seconds=max(spread_seconds, 0.0) * unit_random)
    return RetryDecision(min(max(wake, now), deadline), None)


def is_last_call(policy: RetryPolicy, deadlines: Deadlines, *, attempt: int, now: datetime) -> bool:
    """Whether the call about to go would have no retry if it failed: the limits allow
    no more, or it is already within the deadline's last call time (``last_call``)."""
    if policy.max_attempts is not None and attempt >= policy.max_attempts:
        return True
    if attempt >= policy.partial_after_attempts:
        return True
    deadline, _ = first_deadline(deadlines)
    return now >= deadline - last_call(policy)


def last_call(policy: RetryPolicy) -> timedelta:
    """How long before the deadline the last call is due at the latest: a second, or
    the call's whole timeout when that is shorter."""
    return timedelta(seconds=min(policy.call_timeout_seconds, policy.last_call_seconds))


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP date (seconds from ``now``); None when
    absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
