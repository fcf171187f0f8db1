"""Timestamps on the wire: always UTC ISO 8601 with a ``Z``, whatever the database
returned; and FHIR's date search parameters read as ranges of instants."""

import re
from datetime import UTC, date, datetime, timedelta

__all__ = ["date_search_range", "instant_of", "parse_instant", "utc_iso"]

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$")
_PREFIXES = ("eq", "ge", "gt", "le", "lt")


def utc_iso(value: datetime) -> str:
    """SQLite returns naive datetimes for UTC values, PostgreSQL aware ones: render both alike."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_instant(value: str) -> datetime | None:
    """A FHIR instant (a time with a zone), in the zone it names, or None when ``value``
    is not one (laxer than ``instant_of``: any ISO 8601 time with a zone)."""
    if "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def instant_of(text: str) -> datetime | None:
    """A FHIR instant (a date and a time with a zone, ``2027-01-01T00:00:00Z``) in UTC,
    or None when ``text`` is not one."""
    if not _INSTANT.match(text):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _precision(text: str) -> tuple[datetime, datetime]:
    """The instants ``text`` covers: [start, end). ValueError if it is no date."""
    if _DAY.match(text):
        day = date.fromisoformat(text)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start, start + timedelta(days=1)
    if not _INSTANT.match(text):
        raise ValueError(text)
    start = datetime.fromisoformat(text).astimezone(UTC)
    clock = re.sub(r"(Z|[+-]\d{2}:\d{2})$", "", text.split("T", 1)[1])
    if "." in clock:
        step = timedelta(microseconds=1)
    else:
        step = timedelta(seconds=1) if clock.count(":") == 2 else timedelta(minutes=1)
    return start, start + step


def date_search_range(value: str) -> tuple[datetime | None, datetime | None]:
    """FHIR's date search (``[eq|ge|gt|le|lt]`` and ``YYYY-MM-DD``, a UTC day, or an
    instant with its offset) as [start, end), each None when open; ValueError if the
    value is none of these. A value means the range of its precision."""
    prefix, text = (value[:2], value[2:]) if value[:2] in _PREFIXES else ("eq", value)
    low, high = _precision(text)
    return {
        "eq": (low, high),
        "ge": (low, None),
        "gt": (high, None),
        "le": (None, high),
        "lt": (None, low),
    }[prefix]


def day_of(value: object) -> date | None:
    """The day a FHIR date or dateTime names (its first ten characters), or None when
    it is not one."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None
