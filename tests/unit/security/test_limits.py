"""The rate limits: a burst, then the rate, a true wait when empty; one bucket shared by
every process, leased in blocks so that the shared store is asked rarely at high rates,
and a refusal remembered instead of asked again (``HYPOTHESIS_PROFILE=long`` for a longer
run of the interleavings by hand)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.errors import RateLimited, StoreUnavailable
from payerbridge.security.limits import (
    InMemoryAllowances,
    RateLimiter,
    RatePolicy,
    block_of,
    lease_tokens,
)
from payerbridge.security.model import Lease, Rate

# HYPOTHESIS_PROFILE=long for a longer run by hand.
_EXAMPLES = 20_000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 200


class _Counted(InMemoryAllowances):
    """The shared store, counting how often it is asked."""

    def __init__(self) -> None:
        super().__init__()
        self.leases = 0

    def lease(self, subject: str, operation: str, rate: Rate, wanted: int, *, now: float) -> Lease:
        self.leases += 1
        return super().lease(subject, operation, rate, wanted, now=now)


def limiter(per_second: float, burst: int, store: InMemoryAllowances | None = None) -> RateLimiter:
    return RateLimiter(RatePolicy(Rate(per_second, burst)), store or InMemoryAllowances())


def test_a_burst_then_the_rate_then_an_honest_wait() -> None:
    limits = limiter(0.5, 3)
    for _ in range(3):
        limits.take("a", "GET /exchanges", now=0.0)
    with pytest.raises(RateLimited) as refused:
        limits.take("a", "GET /exchanges", now=0.0)
    assert refused.value.retry_after_seconds == 2  # one request every two seconds
    limits.take("b", "GET /exchanges", now=0.0)  # another client has its own bucket
    limits.take("a", "POST /exchanges", now=0.0)  # and so has another operation
    limits.take("a", "GET /exchanges", now=2.0)
    with pytest.raises(RateLimited):
        limits.take("a", "GET /exchanges", now=2.5)


def test_every_process_takes_from_the_one_bucket() -> None:
    shared = InMemoryAllowances()
    first, second = limiter(2 / 60, 4, shared), limiter(2 / 60, 4, shared)
    first.take("a", "POST /m", now=100.0)
    second.take("a", "POST /m", now=100.0)
    first.take("a", "POST /m", now=100.5)
    second.take("a", "POST /m", now=100.5)
    for process in (first, second):  # four in all, not four each
        with pytest.raises(RateLimited) as refused:
            process.take("a", "POST /m", now=101.0)
        assert refused.value.retry_after_seconds == 29  # one every 30 s, one second gone


def test_an_operation_has_its_own_rate_or_none() -> None:
    policy = RatePolicy(
        Rate(100, 200), {"POST /fhir/Patient/$member-match": Rate(1, 2), "GET /healthz": None}
    )
    limits = RateLimiter(policy, InMemoryAllowances())
    limits.take("a", "POST /fhir/Patient/$member-match", now=0.0)
    limits.take("a", "POST /fhir/Patient/$member-match", now=0.0)
    with pytest.raises(RateLimited, match="Patient/\\$member-match more often than 60 requests"):
        limits.take("a", "POST /fhir/Patient/$member-match", now=0.0)
    for _ in range(1000):
        limits.take("a", "GET /healthz", now=0.0)
    assert RateLimiter(RatePolicy(None), InMemoryAllowances()).take("a", "x", now=0.0) is None


def test_at_a_high_rate_the_store_is_asked_once_a_block() -> None:
    store = _Counted()
    limits = limiter(10_000, 20_000, store)
    assert block_of(Rate(10_000, 20_000)) == 2_500  # a quarter of a second of the rate
    assert block_of(Rate(100, 200)) == 25  # an eighth of the burst
    for i in range(5_000):
        limits.take("a", "POST /m", now=i / 2500)
    assert store.leases == 2


def test_at_a_guessing_rate_every_request_asks_the_store() -> None:
    store = _Counted()
    limits = limiter(2, 30, store)
    for _ in range(30):
        limits.take("a", "POST /m", now=0.0)
    assert store.leases == 30


def test_a_refusal_is_remembered_until_the_bucket_has_a_request_again() -> None:
    store = _Counted()
    limits = limiter(1, 1, store)
    limits.take("a", "POST /m", now=0.0)
    for _ in range(100):
        with pytest.raises(RateLimited):
            limits.take("a", "POST /m", now=0.5)
    assert store.leases == 2  # the one that was refused, then no more until 1.0
    limits.take("a", "POST /m", now=1.0)
    assert store.leases == 3


def test_a_store_that_cannot_be_asked_refuses_the_request() -> None:
    class _Down(InMemoryAllowances):
        def lease(
            self, subject: str, operation: str, rate: Rate, wanted: int, *, now: float
        ) -> Lease:
            raise StoreUnavailable("the database did not answer")

    limits = RateLimiter(RatePolicy(Rate(100, 200)), _Down())
    with pytest.raises(StoreUnavailable):
        limits.take("a", "POST /m", now=0.0)


def test_full_buckets_are_forgotten() -> None:
    store = InMemoryAllowances()
    store.lease("a", "x", Rate(1, 5), 2, now=0.0)
    store.lease("b", "x", Rate(1, 5), 2, now=9.0)
    assert store.forget_idle(now=5.0) == 1
    assert list(store.buckets) == [("b", "x")]


def test_a_lease_takes_what_the_bucket_holds() -> None:
    rate = Rate(1, 5)
    assert lease_tokens(None, rate, 3, now=10.0) == Lease(3, 13.0)
    assert lease_tokens(13.0, rate, 3, now=10.0) == Lease(2, 15.0)  # two left
    assert lease_tokens(15.0, rate, 3, now=10.0) == Lease(0, 15.0)
    assert lease_tokens(15.0, rate, 3, now=11.0) == Lease(1, 16.0)


@settings(max_examples=_EXAMPLES, deadline=None)
@given(
    per_second=st.sampled_from([0.5, 2.0, 50.0, 1000.0]),
    burst=st.integers(1, 64),
    requests=st.lists(
        st.tuples(st.integers(0, 2), st.floats(0, 2.0, allow_nan=False)), max_size=300
    ),
)
def test_processes_together_never_pass_more_than_the_bucket_gives(
    per_second: float, burst: int, requests: list[tuple[int, float]]
) -> None:
    """However three processes' requests interleave, those passed by a time are at most
    the burst plus the rate times the time gone (the bucket's own bound), and a request
    is refused only when the shared bucket is empty."""
    rate = Rate(per_second, burst)
    shared = InMemoryAllowances()
    processes = [limiter(per_second, burst, shared) for _ in range(3)]
    now, passed = 1000.0, 0
    for process, step in requests:
        now += step
        try:
            processes[process].take("a", "POST /m", now=now)
        except RateLimited:  # only when the shared bucket is empty
            assert lease_tokens(shared.buckets.get(("a", "POST /m")), rate, 1, now).granted == 0
        else:
            passed += 1
        assert passed <= burst + (now - 1000.0) * per_second + 1e-6
