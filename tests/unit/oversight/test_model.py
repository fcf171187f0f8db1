"""The dashboard's windows, series and backlog (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from payerbridge.oversight.model import (
    BucketCount,
    Grain,
    Period,
    backlog_over,
    bucket_key,
    series_of,
    window_for,
)

NOW = datetime(2026, 12, 1, 13, 42, 7, tzinfo=UTC)


def test_a_day_is_24_hours_ending_with_the_one_now_and_a_week_7_days() -> None:
    day = window_for(Period.DAY, NOW)
    assert len(day.starts) == 24 and day.grain is Grain.HOUR
    assert day.starts[-1] == datetime(2026, 12, 1, 13, tzinfo=UTC)
    assert day.since == datetime(2026, 11, 30, 14, tzinfo=UTC)
    assert day.keys[-1] == "2026-12-01 13" and day.label(0) == "14:00"
    week = window_for(Period.WEEK, NOW)
    assert week.keys == tuple(f"2026-11-{d}" for d in range(25, 31)) + ("2026-12-01",)
    assert len(window_for(Period.MONTH, NOW).starts) == 30


def test_a_bucket_key_is_the_utc_instant_it_starts() -> None:
    local = datetime(2026, 12, 1, 8, 30, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("America/New_York")
    )
    assert bucket_key(local, Grain.HOUR) == "2026-12-01 08"
    assert bucket_key(local, Grain.DAY) == "2026-12-01"


def test_counts_are_placed_by_bucket_one_series_per_kind_in_the_order_given() -> None:
    window = window_for(Period.WEEK, NOW)
    counts = [
        BucketCount("2026-12-01", "failed", 2),
        BucketCount("2026-11-25", "completed", 5),
        BucketCount("2026-12-01", "completed", 1),
        BucketCount("2026-11-01", "completed", 99),  # before the window: left out
        BucketCount("2026-11-30", "blocked", 3),
    ]
    series = series_of(counts, window, order=("completed", "failed"))
    assert [s.name for s in series] == ["completed", "failed", "blocked"]
    assert series[0].points == (5, 0, 0, 0, 0, 0, 1) and series[0].total == 6
    assert series[2].points == (0, 0, 0, 0, 0, 3, 0)


def test_the_backlog_is_walked_back_from_the_cases_open_now() -> None:
    window = window_for(Period.WEEK, NOW)
    opened = [BucketCount("2026-11-30", "open", 4), BucketCount("2026-12-01", "open", 2)]
    closed = [BucketCount("2026-12-01", "accepted", 3)]
    backlog = backlog_over(window, 5, opened, closed)
    # 5 open now; before today 5 - 2 + 3 = 6; before yesterday 6 - 4 = 2.
    assert backlog.points == (2, 2, 2, 2, 2, 6, 5)


def test_an_empty_window_has_no_series() -> None:
    assert series_of([], window_for(Period.DAY, NOW - timedelta(days=1))) == ()
