"""Business days as the operator's calendar counts them (pure): which days are worked in
the plan's time zone, and when a limit of so many business days ends.

A limit of ``n`` business days ends at the close (local midnight) of the ``n``-th business
day after the day the clock started. A clock that starts on a day not worked (a weekend,
a holiday) counts as started on the next business day: a request received on a Saturday
before a Monday holiday counts as received on Tuesday, and one business day is until
Wednesday's close; one received on the Friday before is due at Tuesday's close. Days are
counted in the calendar's zone, so an instant late in the evening in New York counts on
that day there, whatever day it already is in UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from importlib.resources import files
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from payerbridge.errors import ComplianceFileError, Issue

__all__ = [
    "ISO_DAYS",
    "BusinessCalendar",
    "CalendarError",
    "FileFieldError",
    "first_error",
    "load_calendar",
    "shipped_calendar",
]

ISO_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Longer than any run of days off a calendar could hold (a weekend around a week of
# holidays): a search for the next business day that finds none in this many is a
# calendar with no business days, which loading refuses.
_LONGEST_BREAK = 366


@dataclass(frozen=True)
class BusinessCalendar:
    """The days worked in ``zone``: every day but the ``days_off`` of the week (0 =
    Monday) and the ``holidays``."""

    zone: str = "America/New_York"
    days_off: frozenset[int] = frozenset({5, 6})
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        ZoneInfo(self.zone)  # an unknown zone fails here, when the calendar is made
        if not set(self.days_off) <= set(range(7)):
            raise ValueError("days_off are weekday numbers from 0 (Monday) to 6 (Sunday)")
        if len(self.days_off) == 7:
            raise ValueError("a calendar needs at least one business day in the week")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() not in self.days_off and day not in self.holidays

    def local_day(self, instant: datetime) -> date:
        """The day ``instant`` falls on in the calendar's zone."""
        return instant.astimezone(self.tz).date()

    def next_business_day(self, day: date) -> date:
        """The first business day after ``day``."""
        for step in range(1, _LONGEST_BREAK + 1):
            candidate = day + timedelta(days=step)
            if self.is_business_day(candidate):
                return candidate
        raise ValueError("the calendar has no business day within a year")

    def business_day_on_or_after(self, day: date) -> date:
        return day if self.is_business_day(day) else self.next_business_day(day)

    def add_business_days(self, day: date, count: int) -> date:
        """The ``count``-th business day after the clock's first day: ``day`` when it is
        worked, else the business day after it (as if the clock started then)."""
        if count < 0:
            raise ValueError("count a limit forwards: business days must not be negative")
        found = self.business_day_on_or_after(day)
        for _ in range(count):
            found = self.next_business_day(found)
        return found

    def close_of(self, day: date) -> datetime:
        """The instant ``day`` ends in the calendar's zone (its local midnight), in UTC."""
        following = datetime.combine(day + timedelta(days=1), time(0), self.tz)
        return following.astimezone(UTC)

    def deadline(self, started: datetime, business_days: int) -> datetime:
        """When a limit of ``business_days`` that started at ``started`` ends."""
        return self.close_of(self.add_business_days(self.local_day(started), business_days))

    def business_days_between(self, first: date, last: date) -> int:
        """Business days in ``first`` .. ``last``, both included (0 when ``last`` is
        earlier)."""
        days = (last - first).days + 1
        return sum(1 for n in range(max(0, days)) if self.is_business_day(first + timedelta(n)))

    def with_holidays(self, extra: Iterable[date]) -> BusinessCalendar:
        return BusinessCalendar(self.zone, self.days_off, self.holidays | frozenset(extra))


class FileFieldError(ComplianceFileError):
    """A compliance file that cannot be used: ``field`` names where, as a path."""

    reason_code = "compliance-file-invalid"

    def __init__(self, field: str, text: str) -> None:
        super().__init__(f"{field}: {text}" if field else text, issues=[Issue(text, field or None)])
        self.field = field


class CalendarError(FileFieldError):
    """A calendar file that cannot be used."""

    reason_code = "compliance-file-invalid"


def first_error(exc: ValidationError) -> tuple[str, str]:
    """The first error's field, as a dotted path (list items by index), and its text."""
    first = exc.errors()[0]
    return ".".join(str(part) for part in first["loc"]), first["msg"]


class _Holiday(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    day: dt.date = Field(alias="date")
    name: Annotated[str, Field(min_length=1, max_length=200)]


class _CalendarFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    description: str | None = None
    zone: str
    days_off: tuple[str, ...]
    holidays: tuple[_Holiday, ...] = ()

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{zone}' is not an IANA time zone") from None
        return zone

    @field_validator("days_off")
    @classmethod
    def _week_days(cls, days: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [day for day in days if day not in ISO_DAYS]
        if unknown:
            raise ValueError(f"'{unknown[0]}' is not a day of the week ({', '.join(ISO_DAYS)})")
        if len(set(days)) == 7:
            raise ValueError("every day is off: a calendar needs at least one business day")
        return days


def load_calendar(text: str | bytes) -> BusinessCalendar:
    """The calendar of a file's JSON; CalendarError names the first field at fault."""
    try:
        parsed = _CalendarFile.model_validate_json(text)
    except ValidationError as exc:
        raise CalendarError(*first_error(exc)) from None
    seen: set[date] = set()
    for n, holiday in enumerate(parsed.holidays):
        if holiday.day in seen:
            raise CalendarError(f"holidays.{n}.date", f"{holiday.day} is listed twice")
        seen.add(holiday.day)
    return BusinessCalendar(
        parsed.zone, frozenset(ISO_DAYS.index(day) for day in parsed.days_off), frozenset(seen)
    )


def shipped_calendar() -> BusinessCalendar:
    """The calendar shipped: US federal holidays in New York time."""
    text = files("payerbridge.compliance").joinpath("data/us-federal-holidays.json").read_text()
    return load_calendar(text)
