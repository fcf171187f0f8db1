"""The rate limit's bucket: a burst, then the rate, and a true wait when empty."""

from __future__ import annotations

import pytest

from payerbridge.errors import RateLimited
from payerbridge.security.limits import RateLimiter


def test_a_burst_then_the_rate_then_an_honest_wait() -> None:
    limiter = RateLimiter(per_second=0.5, burst=3)
    for _ in range(3):
        limiter.take("a", "GET /exchanges", now=0.0)
    with pytest.raises(RateLimited) as refused:
        limiter.take("a", "GET /exchanges", now=0.0)
    assert refused.value.retry_after_seconds == 2  # one token every two seconds
    limiter.take("b", "GET /exchanges", now=0.0)  # another client has its own bucket
    limiter.take("a", "POST /exchanges", now=0.0)  # and so has another operation
    limiter.take("a", "GET /exchanges", now=2.0)
    with pytest.raises(RateLimited):
        limiter.take("a", "GET /exchanges", now=2.5)


def test_a_rate_of_zero_is_no_limit() -> None:
    limiter = RateLimiter(per_second=0, burst=0)
    for _ in range(1000):
        limiter.take("a", "x", now=0.0)
