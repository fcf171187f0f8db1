"""A delivery's retry decision and what is kept of a refusal (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.delivery.model import (
    DestinationPolicy,
    FailedAttempt,
    next_attempt,
    outcome_codes,
)

START = datetime(2026, 11, 28, 12, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(1, 40),
    elapsed=st.floats(0, 4000),
    retry_after=st.none() | st.floats(0, 900),
    unit_random=st.floats(0, 0.999),
    budget=st.floats(1, 3600),
)
def test_the_next_attempt_honours_retry_after_and_never_passes_the_budget(
    attempt: int, elapsed: float, retry_after: float | None, unit_random: float, budget: float
) -> None:
    policy = DestinationPolicy(budget_seconds=budget)
    now = START + timedelta(seconds=elapsed)
    due = next_attempt(
        policy, FailedAttempt(attempt, START, retry_after), now=now, unit_random=unit_random
    )
    shortest = timedelta(seconds=max(0.5, retry_after or 0.0))
    if due is None:  # given up only when even the shortest wait lands past the budget
        assert now + shortest > START + timedelta(seconds=budget)
        return
    assert due <= START + timedelta(seconds=budget)
    assert due >= now + shortest - timedelta(microseconds=1)
    assert due <= now + timedelta(seconds=max(policy.max_delay_seconds, retry_after or 0.0))


def test_a_refusal_keeps_its_issue_codes_and_a_hash_never_its_text() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "processing", "diagnostics": "Ann Person 1974-12-25"},
            {"severity": "error", "code": "processing"},
            {"severity": "error", "code": "invalid", "details": {"text": "member A123"}},
        ],
    }
    raw = orjson.dumps(outcome)
    codes, digest = outcome_codes(outcome, raw)
    assert codes == ("processing", "invalid")
    assert len(digest) == 64 and "Ann" not in digest
    assert outcome_codes("<html>no</html>", b"<html>no</html>")[0] == ()
