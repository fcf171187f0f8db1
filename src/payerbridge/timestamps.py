"""Timestamps on the wire: always UTC ISO 8601 with a ``Z``, whatever the database returned."""

from datetime import UTC, datetime

__all__ = ["utc_iso"]


def utc_iso(value: datetime) -> str:
    """SQLite returns naive datetimes for UTC values, PostgreSQL aware ones: render both alike."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
