"""Failure classes, backoff with full jitter within budgets, and the circuit breaker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.errors import IllegalTransition
from payerbridge.exchange.breaker import (
    BreakerState,
    BreakerStatus,
    admit,
    record_failure,
    record_success,
)
from payerbridge.exchange.model import ExchangeState as S
from payerbridge.exchange.model import check_transition
from payerbridge.exchange.retry import (
    FailureClass,
    RetryPolicy,
    classify_status,
    decide_retry,
    full_jitter_delay,
    retry_after_seconds,
)

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=4, base_delay_seconds=1, max_delay_seconds=5)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, FailureClass.RETRYABLE),
        (500, FailureClass.RETRYABLE),
        (502, FailureClass.RETRYABLE),
        (503, FailureClass.RETRYABLE),
        (504, FailureClass.RETRYABLE),
        (401, FailureClass.REVALIDATE),
        (403, FailureClass.REVALIDATE),
        (400, FailureClass.TERMINAL),
        (404, FailureClass.TERMINAL),
        (409, FailureClass.TERMINAL),
        (501, FailureClass.TERMINAL),
    ],
)
def test_statuses_fall_in_one_failure_class(status: int, expected: FailureClass) -> None:
    assert classify_status(status) is expected


@given(attempt=st.integers(1, 30), unit=st.floats(0, 0.999999))
def test_full_jitter_stays_under_the_capped_exponential(attempt: int, unit: float) -> None:
    delay = full_jitter_delay(POLICY, attempt, unit)
    assert 0 <= delay <= min(5, 2 ** (attempt - 1))


def decide(
    attempt: int,
    *,
    retry_after: float | None = None,
    unit: float = 0.5,
    step_left: float = 100,
    exchange_left: float = 100,
) -> tuple[datetime | None, str | None]:
    decision = decide_retry(
        POLICY,
        attempt=attempt,
        now=T0,
        step_deadline=T0 + timedelta(seconds=step_left),
        exchange_deadline=T0 + timedelta(seconds=exchange_left),
        retry_after_seconds=retry_after,
        unit_random=unit,
    )
    return decision.retry_at, decision.give_up_reason


def test_retry_waits_jittered_backoff_and_at_least_retry_after() -> None:
    assert decide(3, unit=0.5) == (T0 + timedelta(seconds=2), None)
    assert decide(1, retry_after=7, unit=0.1) == (T0 + timedelta(seconds=7), None)


def test_the_attempt_limit_and_both_budgets_end_retries() -> None:
    assert decide(4) == (None, "attempts-exhausted")
    assert decide(1, retry_after=30, step_left=20) == (None, "budget-exhausted")
    assert decide(1, retry_after=30, exchange_left=20) == (None, "budget-exhausted")


def test_the_policy_version_changes_with_any_limit() -> None:
    assert (
        POLICY.version
        == RetryPolicy(max_attempts=4, base_delay_seconds=1, max_delay_seconds=5).version
    )
    assert (
        POLICY.version
        != RetryPolicy(max_attempts=5, base_delay_seconds=1, max_delay_seconds=5).version
    )
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("3", now=T0) == 3.0
    assert retry_after_seconds("Sat, 21 Nov 2026 12:00:10 GMT", now=T0) == 10.0
    assert retry_after_seconds("soon", now=T0) is None
    assert retry_after_seconds(None, now=T0) is None


COOL = timedelta(seconds=30)


def test_the_breaker_opens_after_the_threshold_and_rejects_until_cooldown() -> None:
    state = BreakerState()
    for _ in range(2):
        state = record_failure(state, T0, threshold=3, cooldown=COOL)
        assert state.status is BreakerStatus.CLOSED and admit(state, T0, COOL).allowed
    state = record_failure(state, T0, threshold=3, cooldown=COOL)
    assert state.status is BreakerStatus.OPEN
    rejected = admit(state, T0 + timedelta(seconds=10), COOL)
    assert not rejected.allowed and rejected.retry_at == T0 + COOL


def test_half_open_lets_one_probe_through_and_its_outcome_decides() -> None:
    opened = record_failure(BreakerState(), T0, threshold=1, cooldown=COOL)
    later = T0 + COOL
    probe = admit(opened, later, COOL)
    assert probe.allowed and probe.state.status is BreakerStatus.HALF_OPEN
    assert not admit(probe.state, later + timedelta(seconds=1), COOL).allowed  # one probe only
    assert admit(probe.state, later + COOL, COOL).allowed  # a dead probe's lease expires
    assert record_success(probe.state) == BreakerState()
    reopened = record_failure(probe.state, later, threshold=5, cooldown=COOL)
    assert reopened.status is BreakerStatus.OPEN and reopened.open_until == later + COOL


def test_a_dead_letter_can_only_be_replayed_or_given_up() -> None:
    check_transition(S.DEAD_LETTERED, S.VALIDATED)
    check_transition(S.DEAD_LETTERED, S.FAILED)
    for target in (S.COMPLETED, S.MEMBER_MATCHED, S.RETRIEVING, S.SUBMITTED):
        with pytest.raises(IllegalTransition):
            check_transition(S.DEAD_LETTERED, target)
    for state in (S.ROUTE_SELECTED, S.RETRIEVING):
        check_transition(state, S.DEAD_LETTERED)
    with pytest.raises(IllegalTransition):
        check_transition(S.COMPLETED, S.DEAD_LETTERED)
