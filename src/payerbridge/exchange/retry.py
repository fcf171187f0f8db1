"""How an exchange step reacts to a partner failure (pure: no I/O, no clock, no randomness).

Every partner failure falls in one class:

- ``retryable``: connection errors, timeouts, 429, 500/502/503/504. Tried again after a
  bounded exponential backoff with full jitter, never sooner than the partner's
  ``Retry-After``, within the step's attempt limit and both time budgets.
- ``revalidate``: 401/403. Credentials are refreshed and the call is tried once more;
  a second refusal is terminal.
- ``terminal``: other 4xx, contract and schema errors. Never retried.

Consent and identity outcomes (no match, multiple matches, consent refused) are
answers, not failures: the service turns them into ``failed``/``blocked`` directly.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Protocol

from payerbridge.exchange.reasons import ExchangeReason

__all__ = [
    "retry_after_seconds",
    "Backoff",
    "FailureClass",
    "RetryDecision",
    "RetryPolicy",
    "classify_status",
    "decide_retry",
    "full_jitter_delay",
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


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt limits and time budgets of outbound steps; versioned by its own content."""

    max_attempts: int = 6
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    step_budget_seconds: float = 120.0
    exchange_budget_seconds: float = 900.0
    call_timeout_seconds: float = 30.0
    breaker_failure_threshold: int = 5
    breaker_cooldown_seconds: float = 30.0
    # Waiting on the old payer's reviewer: the first wait, and the most we wait in all.
    review_poll_seconds: float = 300.0
    review_wait_seconds: float = 72 * 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay_seconds, self.max_delay_seconds) < 0:
            raise ValueError("retry delays cannot be negative")
        if min(self.step_budget_seconds, self.exchange_budget_seconds) <= 0:
            raise ValueError("time budgets must be positive")
        if self.breaker_failure_threshold < 1:
            raise ValueError("breaker_failure_threshold must be at least 1")

    @functools.cached_property  # recorded with every transition: hashed once
    def version(self) -> str:
        """``retry/<hash>``: recorded with every transition so a history says which
        limits were in force."""
        text = ",".join(f"{k}={v}" for k, v in sorted(asdict(self).items()))
        return "retry/" + hashlib.sha256(text.encode()).hexdigest()[:12]

    def snapshot(self) -> dict[str, float | int | str]:
        return {**asdict(self), "version": self.version}


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


@dataclass(frozen=True)
class RetryDecision:
    """``retry_at`` when the step should run again; otherwise ``give_up_reason``."""

    retry_at: datetime | None
    give_up_reason: str | None


def decide_retry(
    policy: RetryPolicy,
    *,
    attempt: int,
    now: datetime,
    step_deadline: datetime,
    exchange_deadline: datetime,
    retry_after_seconds: float | None,
    unit_random: float,
) -> RetryDecision:
    """After retryable failure number ``attempt``: when to try again, or why not.

    Waits at least ``Retry-After``; gives up rather than wait past either deadline,
    since an attempt that starts after its budget could only be cut off."""
    if attempt >= policy.max_attempts:
        return RetryDecision(None, ExchangeReason.ATTEMPTS_EXHAUSTED)
    delay = full_jitter_delay(policy, attempt, unit_random)
    if retry_after_seconds is not None:
        delay = max(delay, retry_after_seconds)
    retry_at = now + timedelta(seconds=delay)
    if retry_at >= min(step_deadline, exchange_deadline):
        return RetryDecision(None, ExchangeReason.BUDGET_EXHAUSTED)
    return RetryDecision(retry_at, None)


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
