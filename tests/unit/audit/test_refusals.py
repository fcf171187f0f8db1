"""Refusal windows, reasons and events (pure, ADR 0045)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from payerbridge.audit.refusals import (
    CARD_GUARD,
    RefusalWindow,
    refusal_event,
    refusal_reason,
    window_of,
)
from payerbridge.errors import (
    AmbiguousMatch,
    NoMatch,
    RateLimited,
    TooManyAttempts,
    WrongCardGuess,
)

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
lengths = st.integers(1, 86_400 * 7).map(lambda s: timedelta(seconds=s))


@given(instants, lengths)
def test_an_instant_falls_in_one_window_of_the_length_aligned_to_the_epoch(
    at: datetime, length: timedelta
) -> None:
    start, end = window_of(at, length)
    assert start <= at < end and end - start == length
    assert (start - datetime(1970, 1, 1, tzinfo=UTC)) % length == timedelta(0)
    assert window_of(start, length) == (start, end)  # the start is in its own window
    assert window_of(end, length)[0] == end  # the end is the next window's start


@given(instants, lengths)
def test_the_window_is_the_same_in_any_time_zone(at: datetime, length: timedelta) -> None:
    assert window_of(at.astimezone(ZoneInfo("America/Chicago")), length) == window_of(at, length)


def test_a_refusal_is_counted_under_its_reason_code_a_guess_under_card_guard() -> None:
    assert refusal_reason(NoMatch("x")) == "no-match"
    assert refusal_reason(AmbiguousMatch("x")) == "multiple-matches"
    assert refusal_reason(TooManyAttempts("x", retry_after_seconds=1)) == "too-many-attempts"
    limited = RateLimited("x", retry_after_seconds=1, subject="c")
    assert refusal_reason(limited) == "client-rate-limited"
    guess = WrongCardGuess("no member matched")
    assert refusal_reason(guess) == CARD_GUARD
    assert guess.reason_code == NoMatch.reason_code  # the wire says no more than no match


def test_a_windows_event_names_the_client_window_and_count_and_nothing_else() -> None:
    start = datetime(2026, 11, 27, 21, 0, tzinfo=UTC)
    window = RefusalWindow(
        "newplan", "member-match", "no-match", start, start + timedelta(minutes=5), 7
    )
    event = refusal_event(window, at=start + timedelta(minutes=6))
    assert (event.actor, event.action, event.entity_type, event.entity_id, event.outcome) == (
        "newplan",
        "refusals",
        "Client",
        "newplan",
        "refused",
    )
    assert event.detail == {
        "operation": "member-match",
        "reason": "no-match",
        "window_start": "2026-11-27T21:00:00.000000+00:00",
        "window_end": "2026-11-27T21:05:00.000000+00:00",
        "count": 7,
    }
