"""Business-day deadlines, checked as properties over generated calendars and instants
rather than a list of dates we thought of; and the calendar file's errors."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from importlib.resources import files
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.compliance.calendar import (
    ISO_DAYS,
    BusinessCalendar,
    CalendarError,
    load_calendar,
)

ZONES = ("America/New_York", "America/Los_Angeles", "America/Chicago", "Pacific/Honolulu", "UTC")
DAY0 = date(2026, 1, 1)


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    days_off = draw(st.frozensets(st.integers(0, 6), max_size=5))
    holidays = draw(
        st.frozensets(st.integers(0, 800).map(lambda n: DAY0 + timedelta(days=n)), max_size=40)
    )
    return BusinessCalendar(draw(st.sampled_from(ZONES)), days_off, holidays)


instants = st.integers(0, 700 * 24 * 60).map(
    lambda minutes: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
)


@given(calendars(), instants, st.integers(0, 10))
def test_a_deadline_is_the_close_of_the_nth_business_day_after_the_clock_starts(
    calendar: BusinessCalendar, received: datetime, n: int
) -> None:
    due = calendar.deadline(received, n)
    local = due.astimezone(ZoneInfo(calendar.zone))
    assert local.time() == time(0) and due > received
    last_day = local.date() - timedelta(days=1)  # the day the deadline closes
    assert calendar.is_business_day(last_day)
    start_day = calendar.local_day(received)
    first = calendar.business_day_on_or_after(start_day)  # the clock's first day
    # Exactly n business days after the first one, up to and including the last.
    assert calendar.business_days_between(first + timedelta(days=1), last_day) == n
    if calendar.is_business_day(start_day):
        assert first == start_day


@given(calendars(), instants, instants, st.integers(0, 5))
def test_a_later_request_is_never_due_earlier(
    calendar: BusinessCalendar, one: datetime, other: datetime, n: int
) -> None:
    early, late = sorted((one, other))
    assert calendar.deadline(early, n) <= calendar.deadline(late, n)


@given(calendars(), instants)
def test_a_holiday_only_ever_moves_a_deadline_later(
    calendar: BusinessCalendar, received: datetime
) -> None:
    day = calendar.local_day(received) + timedelta(days=1)
    assert calendar.deadline(received, 1) <= calendar.with_holidays([day]).deadline(received, 1)


def test_a_friday_request_before_a_monday_holiday_is_due_at_tuesdays_close() -> None:
    calendar = BusinessCalendar(
        "America/New_York", frozenset({5, 6}), frozenset({date(2027, 1, 18)})
    )
    friday_evening = datetime(2027, 1, 15, 22, 30, tzinfo=ZoneInfo("America/New_York"))
    assert calendar.deadline(friday_evening, 1) == datetime(
        2027, 1, 20, 0, 0, tzinfo=ZoneInfo("America/New_York")
    )
    saturday = datetime(2027, 1, 16, 9, 0, tzinfo=ZoneInfo("America/New_York"))  # as Tuesday
    assert calendar.deadline(saturday, 1) == datetime(
        2027, 1, 21, 0, 0, tzinfo=ZoneInfo("America/New_York")
    )


def test_days_are_counted_where_the_plan_is_not_in_utc() -> None:
    calendar = BusinessCalendar("America/Los_Angeles")
    # Friday 20:00 in Los Angeles is already Saturday in UTC: it still counts as Friday.
    friday = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
    assert calendar.local_day(friday) == date(2026, 12, 4)
    assert calendar.deadline(friday, 1) == datetime(
        2026, 12, 8, 0, 0, tzinfo=ZoneInfo("America/Los_Angeles")
    )


def _shipped() -> dict[str, object]:
    text = files("payerbridge.compliance").joinpath("data/us-federal-holidays.json").read_text()
    document: dict[str, object] = json.loads(text)
    return document


def _nth_monday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(7 - first.weekday()) % 7 + 7 * (n - 1))


def test_the_shipped_calendar_holds_the_observed_federal_holidays() -> None:
    calendar = load_calendar(json.dumps(_shipped()))
    assert calendar.days_off == frozenset({5, 6}) and calendar.zone == "America/New_York"
    for year in (2026, 2027, 2028):
        # The Monday holidays, computed here by their rule, not read from the file.
        for month, n in ((1, 3), (2, 3), (9, 1), (10, 2)):
            assert _nth_monday(year, month, n) in calendar.holidays
        thanksgiving = date(year, 11, 1) + timedelta(
            days=(3 - date(year, 11, 1).weekday()) % 7 + 21
        )
        assert thanksgiving in calendar.holidays
        for month, day in ((6, 19), (7, 4), (11, 11), (12, 25)):
            fixed = date(year, month, day)
            observed = {5: fixed - timedelta(days=1), 6: fixed + timedelta(days=1)}
            assert observed.get(fixed.weekday(), fixed) in calendar.holidays
    assert all(day.weekday() < 5 for day in calendar.holidays)
    assert date(2027, 12, 31) in calendar.holidays  # New Year's Day 2028 is a Saturday


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"zone": "Mars/Olympus_Mons"}, "zone"),
        ({"days_off": ["saturday", "funday"]}, "days_off"),
        ({"days_off": list(ISO_DAYS)}, "days_off"),
        ({"holidays": [{"date": "2026-13-01", "name": "x"}]}, "holidays.0.date"),
        ({"holidays": [{"date": "2026-12-25"}]}, "holidays.0.name"),
        ({"holidays": [{"date": "2026-12-25", "name": "a"}] * 2}, "holidays.1.date"),
        ({"weekend": ["sunday"]}, "weekend"),
        ({"days_off": "saturday"}, "days_off"),
    ],
)
def test_a_calendar_file_that_cannot_be_used_names_the_field(
    change: dict[str, object], field: str
) -> None:
    with pytest.raises(CalendarError) as caught:
        load_calendar(json.dumps({**_shipped(), **change}))
    assert caught.value.field == field, caught.value


def test_a_calendar_that_is_not_json_says_so() -> None:
    with pytest.raises(CalendarError, match="JSON"):
        load_calendar("{not json")
