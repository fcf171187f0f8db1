"""A partner's health judged from its breaker, its maintenance and its recent calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from payerbridge.exchange.model import BreakerState, BreakerStatus
from payerbridge.oversight.model import CallSample
from payerbridge.oversight.partner_health import HealthPolicy, HealthState, derive_health, p95

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
POLICY = HealthPolicy()

calls = st.lists(
    st.builds(
        CallSample,
        at=st.integers(0, 7200).map(lambda s: NOW - timedelta(seconds=s)),
        answered=st.booleans(),
        latency_ms=st.integers(0, 20_000),
        kind=st.sampled_from(["answered", "ConnectError", "http 503", "refused: NoMatch"]),
        probe=st.booleans(),
    ),
    max_size=40,
)
breakers = st.builds(
    BreakerState,
    status=st.sampled_from(list(BreakerStatus)),
    consecutive_failures=st.integers(0, 10),
)
maintenance = st.none() | st.just((NOW + timedelta(hours=1), "upgrade"))


def _health(breaker, samples, window=None):  # type: ignore[no-untyped-def]
    return derive_health(breaker, samples, maintenance=window, last_success_before=None, now=NOW)


@given(breakers, calls, maintenance)
def test_maintenance_wins_and_an_unclosed_breaker_is_down(breaker, samples, window) -> None:  # type: ignore[no-untyped-def]
    health = _health(breaker, samples, window)
    if window is not None:
        assert health.state is HealthState.MAINTENANCE
    elif breaker.status is not BreakerStatus.CLOSED:
        assert health.state is HealthState.DOWN


@given(calls)
def test_a_closed_breaker_with_answered_recent_calls_is_never_down(samples) -> None:  # type: ignore[no-untyped-def]
    answered = [s for s in samples if s.answered]
    health = _health(BreakerState(), samples)
    recent = [s for s in samples if NOW - s.at <= POLICY.state_window]
    if any(s.answered for s in recent) or not recent:
        assert health.state is not HealthState.DOWN
    assert health.calls == sum(1 for s in samples if NOW - s.at <= POLICY.window)
    in_window = [s for s in answered if NOW - s.at <= POLICY.window]
    assert health.last_success_at == max((s.at for s in in_window), default=None)


@given(calls)
def test_the_error_mix_counts_every_call_not_answered_plainly(samples) -> None:  # type: ignore[no-untyped-def]
    health = _health(BreakerState(), samples)
    in_window = [s for s in samples if NOW - s.at <= POLICY.window]
    assert sum(health.error_mix.values()) == sum(1 for s in in_window if s.kind != "answered")
    assert health.unanswered == sum(1 for s in in_window if not s.answered)


@given(st.lists(st.integers(0, 100_000), min_size=1, max_size=200))
def test_p95_is_a_latency_seen_with_95_percent_at_or_below_it(latencies: list[int]) -> None:
    value = p95(latencies)
    assert value in latencies
    assert sum(1 for x in latencies if x <= value) >= 0.95 * len(latencies)
    assert sum(1 for x in latencies if x < value) < 0.95 * len(latencies)


def test_no_calls_and_a_closed_breaker_is_up() -> None:
    health = _health(BreakerState(), [])
    assert health.state is HealthState.UP
    assert health.latency_p95_ms is None and health.last_success_at is None


def test_every_recent_call_unanswered_is_down_and_some_is_degraded() -> None:
    failed = CallSample(NOW - timedelta(seconds=5), False, 10, "ConnectError")
    ok = CallSample(NOW - timedelta(seconds=1), True, 30, "answered")
    assert _health(BreakerState(), [failed, failed]).state is HealthState.DOWN
    degraded = _health(BreakerState(), [failed, ok, ok])
    assert degraded.state is HealthState.DEGRADED
    assert degraded.error_mix == {"ConnectError": 1}
    assert degraded.to_json()["state"] == "degraded"


def test_an_old_outage_leaves_the_state_but_stays_in_the_mix() -> None:
    old = CallSample(NOW - timedelta(minutes=30), False, 10, "ConnectError")
    ok = CallSample(NOW - timedelta(seconds=1), True, 30, "answered")
    health = _health(BreakerState(), [old, ok])
    assert health.state is HealthState.UP
    assert health.error_mix == {"ConnectError": 1}
