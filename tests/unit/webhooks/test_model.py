"""Webhook signatures, backoff and URL rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from payerbridge.webhooks.model import WebhookPolicy, next_attempt, sign, verify

NOW = datetime(2027, 1, 1, tzinfo=UTC)
BODY = b'{"id":"d1","type":"exchange.state-changed"}'


def test_a_signature_verifies_only_with_its_secret_body_and_time() -> None:
    header = sign("s3cret", 1_800_000_000, BODY)
    assert header.startswith("t=1800000000,v1=")
    assert verify("s3cret", header, BODY, now=1_800_000_100)
    assert not verify("other", header, BODY, now=1_800_000_100)
    assert not verify("s3cret", header, BODY + b" ", now=1_800_000_100)
    assert not verify("s3cret", header, BODY, now=1_800_000_000 + 301)  # replayed late
    assert not verify("s3cret", "v1=abc", BODY, now=1_800_000_000)
    assert not verify("s3cret", "t=soon,v1=abc", BODY, now=1_800_000_000)


@given(
    attempt=st.integers(1, 20),
    unit=st.floats(0, 1, exclude_max=True),
    retry_after=st.one_of(st.none(), st.floats(0, 1000)),
)
def test_backoff_is_bounded_honours_retry_after_and_stops(
    attempt: int, unit: float, retry_after: float | None
) -> None:
    policy = WebhookPolicy(max_attempts=8, base_delay_seconds=1, max_delay_seconds=300)
    at = next_attempt(
        policy, attempt=attempt, now=NOW, retry_after_seconds=retry_after, unit_random=unit
    )
    if attempt >= policy.max_attempts:
        assert at is None
        return
    assert at is not None
    delay = (at - NOW).total_seconds()
    assert 0 <= delay <= policy.max_delay_seconds
    assert delay <= max(2 ** (attempt - 1), retry_after or 0) + 1e-5  # timedelta: whole µs
    if retry_after is not None:
        assert delay >= min(retry_after, policy.max_delay_seconds) - 1e-6


def test_a_delay_never_passes_the_cap() -> None:
    policy = WebhookPolicy(max_attempts=50, base_delay_seconds=1, max_delay_seconds=60)
    at = next_attempt(policy, attempt=30, now=NOW, retry_after_seconds=10_000, unit_random=0.99)
    assert at == NOW + timedelta(seconds=60)
