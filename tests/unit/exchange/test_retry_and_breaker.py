"""Failure classes, the backoff toward the deadline, the waits of a held-back call, and the
circuit breaker with its one probe per interval (ADR 0047); the schedules' properties
with hypothesis: never beyond the deadline, never more than one probe per interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.errors import IllegalTransition
from payerbridge.exchange.calls.breaker import (
    admit,
    as_seen,
    record_failure,
    record_probe,
    record_success,
)
from payerbridge.exchange.calls.retry import (
    Deadlines,
    FailedCall,
    FailureClass,
    backoff_ceiling,
    backoff_delay,
    classify_status,
    decide_retry,
    decide_wait,
    full_jitter_delay,
    is_last_call,
    last_call,
    retry_after_seconds,
)
from payerbridge.exchange.model import BreakerState, BreakerStatus, RetryPolicy, check_transition
from payerbridge.exchange.model import ExchangeState as S

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(base_delay_seconds=1, max_delay_seconds=5, call_timeout_seconds=2)


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
    exchange_left: float = 1000,
    step_left: float | None = None,
    waited: float = 0,
    policy: RetryPolicy = POLICY,
) -> tuple[datetime | None, str | None]:
    decision = decide_retry(
        policy,
        FailedCall(attempt, T0 - timedelta(seconds=waited), retry_after),
        Deadlines(
            T0 + timedelta(seconds=exchange_left),
            T0 + timedelta(seconds=step_left) if step_left is not None else None,
        ),
        now=T0,
        unit_random=unit,
    )
    return decision.retry_at, decision.give_up_reason


def test_retry_waits_an_equal_jittered_backoff_and_at_least_retry_after() -> None:
    assert decide(3, unit=0.5) == (T0 + timedelta(seconds=3), None)  # 4 s, jittered to 3
    assert decide(1, retry_after=7, unit=0.1) == (T0 + timedelta(seconds=7), None)


def test_attempts_are_not_counted_by_default_the_deadline_ends_retries() -> None:
    assert decide(50)[0] is not None  # fifty calls: still within the deadline
    # The last call worth making (a second before the deadline) is made...
    assert decide(3, exchange_left=3) == (T0 + timedelta(seconds=2), None)
    # ...and once past it, or asked to wait past it, the exchange gives up.
    assert decide(3, exchange_left=0.9) == (None, "deadline-exceeded")
    assert decide(1, retry_after=30, exchange_left=20) == (None, "deadline-exceeded")


def test_an_operators_attempt_limit_and_step_budget_still_end_retries() -> None:
    limited = RetryPolicy(max_attempts=4, base_delay_seconds=1, max_delay_seconds=5)
    assert decide(4, policy=limited) == (None, "attempts-exhausted")
    assert decide(1, retry_after=30, step_left=20) == (None, "budget-exhausted")
    assert decide(1, retry_after=30, step_left=2000, exchange_left=20) == (
        None,
        "deadline-exceeded",
    )


def test_the_backoff_grows_with_the_time_waited_past_its_cap() -> None:
    assert backoff_ceiling(POLICY, 10, waited_seconds=0) == 5  # the exponential's cap
    assert backoff_ceiling(POLICY, 10, waited_seconds=600) == 60  # a tenth of ten minutes
    assert backoff_ceiling(POLICY, 10, waited_seconds=10**7) == 3600  # the longest wait


def test_the_policy_version_changes_with_any_limit() -> None:
    assert (
        POLICY.version
        == RetryPolicy(base_delay_seconds=1, max_delay_seconds=5, call_timeout_seconds=2).version
    )
    assert POLICY.version != RetryPolicy(max_attempts=5).version
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="positive"):
        RetryPolicy(exchange_budget_seconds=0)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("3", now=T0) == 3.0
    assert retry_after_seconds("Sat, 21 Nov 2026 12:00:10 GMT", now=T0) == 10.0
    assert retry_after_seconds("soon", now=T0) is None
    assert retry_after_seconds(None, now=T0) is None


policies = st.builds(
    RetryPolicy,
    base_delay_seconds=st.floats(0, 10),
    max_delay_seconds=st.floats(0, 120),
    longest_delay_seconds=st.floats(0, 7200),
    backoff_growth=st.floats(0, 1),
    call_timeout_seconds=st.floats(0.1, 60),
)


@given(
    policy=policies,
    attempt=st.integers(1, 200),
    waited=st.floats(0, 10**6),
    left=st.floats(-100, 10**6),
    retry_after=st.none() | st.floats(0, 10**5),
    unit=st.floats(0, 0.999999),
)
def test_a_retry_is_never_beyond_the_deadline_and_never_before_retry_after(
    policy: RetryPolicy,
    attempt: int,
    waited: float,
    left: float,
    retry_after: float | None,
    unit: float,
) -> None:
    """Property: a retry is due no later than the last moment a call is still worth
    making before the deadline, never sooner than the partner asked; and the exchange
    only gives up (without an attempt limit) when no such call fits."""
    deadline = T0 + timedelta(seconds=left)
    decision = decide_retry(
        policy,
        FailedCall(attempt, T0 - timedelta(seconds=waited), retry_after),
        Deadlines(deadline),
        now=T0,
        unit_random=unit,
    )
    latest = deadline - last_call(policy)
    asked = T0 + timedelta(seconds=retry_after or 0)
    if decision.retry_at is None:
        assert decision.give_up_reason == "deadline-exceeded"
        assert latest <= T0 or asked > latest
    else:
        assert T0 <= decision.retry_at <= latest < deadline
        assert decision.retry_at >= asked
        assert decision.retry_at <= T0 + timedelta(
            seconds=max(backoff_ceiling(policy, attempt, waited), retry_after or 0)
        )


@given(
    policy=policies,
    attempt=st.integers(1, 100),
    waited=st.floats(0, 10**6),
    more=st.integers(0, 100),
    longer=st.floats(0, 10**6),
    unit=st.floats(0, 0.999999),
)
def test_the_backoff_grows_toward_the_deadline_with_a_growing_jitter(
    policy: RetryPolicy, attempt: int, waited: float, more: int, longer: float, unit: float
) -> None:
    """Property: the ceiling never shrinks as calls and waiting add up, and the wait drawn
    is within its upper half (its jitter's spread grows with it)."""
    ceiling = backoff_ceiling(policy, attempt, waited)
    assert backoff_ceiling(policy, attempt + more, waited + longer) >= ceiling
    assert ceiling / 2 <= backoff_delay(policy, attempt, waited, unit) <= ceiling


@given(
    until=st.none() | st.floats(-100, 10**5),
    left=st.floats(-100, 10**5),
    spread=st.floats(0, 5),
    unit=st.floats(0, 0.999999),
)
def test_a_held_back_call_waits_for_its_hold_and_never_past_the_deadline(
    until: float | None, left: float, spread: float, unit: float
) -> None:
    deadline = T0 + timedelta(seconds=left)
    held_until = T0 + timedelta(seconds=until) if until is not None else None
    decision = decide_wait(
        Deadlines(deadline),
        until=held_until,
        now=T0,
        spread_seconds=spread,
        unit_random=unit,
    )
    if deadline <= T0:
        assert (decision.retry_at, decision.give_up_reason) == (None, "deadline-exceeded")
        return
    assert decision.retry_at is not None
    assert T0 <= decision.retry_at <= deadline
    if held_until is not None and T0 <= held_until < deadline:
        assert decision.retry_at >= held_until  # not before the hold ends
        assert decision.retry_at <= held_until + timedelta(seconds=spread)


def test_the_last_call_keeps_what_it_read() -> None:
    def last(attempt: int, left: float, policy: RetryPolicy = POLICY) -> bool:
        deadline = T0 + timedelta(seconds=left)
        return is_last_call(policy, Deadlines(deadline), attempt=attempt, now=T0)

    assert not last(1, 100) and last(6, 100)  # a later page's retries are few
    assert last(1, 0.9)  # no time for another call after this one
    assert last(2, 100, RetryPolicy(max_attempts=2))


INTERVAL = timedelta(seconds=30)


def test_the_breaker_opens_after_the_threshold_and_parks_calls_until_its_probe() -> None:
    state = BreakerState()
    for _ in range(2):
        state = record_failure(state, T0, threshold=3, cooldown=INTERVAL)
        assert state.status is BreakerStatus.CLOSED and admit(state, T0, INTERVAL).allowed
    state = record_failure(state, T0, threshold=3, cooldown=INTERVAL)
    assert state.status is BreakerStatus.OPEN
    held = admit(state, T0 + timedelta(seconds=10), INTERVAL)
    assert not held.allowed and not held.probe and held.retry_at == T0 + INTERVAL
    # A call in flight that fails later counts, but does not put the probe off.
    assert record_failure(state, T0 + timedelta(seconds=5), threshold=3, cooldown=INTERVAL) == (
        BreakerState(BreakerStatus.OPEN, 4, open_until=T0 + INTERVAL)
    )


def test_one_caller_claims_the_probe_and_its_outcome_decides() -> None:
    opened = record_failure(BreakerState(), T0, threshold=1, cooldown=INTERVAL)
    later = T0 + INTERVAL
    claim = admit(opened, later, INTERVAL)
    assert claim.probe and not claim.allowed and claim.state.status is BreakerStatus.HALF_OPEN
    other = admit(claim.state, later + timedelta(seconds=0.5), INTERVAL)
    assert not other.probe and other.retry_at == later + timedelta(seconds=1.5)  # settles soon
    assert admit(claim.state, later + INTERVAL, INTERVAL).probe  # a dead prober's lease ends
    assert record_probe(claim.state, later, answered=True, interval=INTERVAL) == BreakerState()
    reopened = record_probe(claim.state, later, answered=False, interval=INTERVAL)
    assert reopened.status is BreakerStatus.OPEN and reopened.open_until == later + INTERVAL
    # A probe that ends after a call closed the breaker does not open it again.
    assert record_probe(BreakerState(), later, answered=False, interval=INTERVAL).status is (
        BreakerStatus.CLOSED
    )


def test_a_breaker_past_its_open_until_reads_half_open_and_any_answer_closes_it() -> None:
    opened = BreakerState(BreakerStatus.OPEN, 5, open_until=T0)
    assert as_seen(opened, T0 - timedelta(seconds=1)).status is BreakerStatus.OPEN
    seen = as_seen(opened, T0 + timedelta(minutes=13))
    assert seen.status is BreakerStatus.HALF_OPEN and seen.next_probe_at is None  # due now
    assert record_success(opened) == BreakerState()


# One step of the breaker's life: time passes, a caller asks to call, its probe ends,
# or a call (admitted before) ends.
events = st.lists(
    st.tuples(
        st.sampled_from(["admit", "probe-ok", "probe-down", "call-ok", "call-down"]),
        st.floats(0, 90),
    ),
    max_size=80,
)


@given(events=events, threshold=st.integers(1, 6))
def test_never_more_than_one_probe_per_interval_and_no_call_while_not_closed(
    events: list[tuple[str, float]], threshold: int
) -> None:
    """Property: whatever callers, probes and stray call outcomes come in whatever order,
    probes are claimed at least one interval apart, no call is let through unless the
    breaker is closed, and what a screen shows is open only before ``open_until``."""
    state, now, claims = BreakerState(), T0, []
    for kind, seconds in events:
        now += timedelta(seconds=seconds)
        if kind == "admit":
            admission = admit(state, now, INTERVAL)
            assert admission.allowed == (state.status is BreakerStatus.CLOSED)
            if admission.probe:
                claims.append(now)
            state = admission.state
        elif kind.startswith("probe"):
            state = record_probe(state, now, answered=kind == "probe-ok", interval=INTERVAL)
        elif kind == "call-ok":
            state = record_success(state)
        else:
            state = record_failure(state, now, threshold=threshold, cooldown=INTERVAL)
        seen = as_seen(state, now)
        if seen.status is BreakerStatus.OPEN:
            assert seen.open_until is not None and now < seen.open_until
    assert all(b - a >= INTERVAL for a, b in zip(claims, claims[1:], strict=False))


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
