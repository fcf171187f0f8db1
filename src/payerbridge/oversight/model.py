"""What the people who run payerbridge watch (pure): the dashboard's time windows and
their buckets, series of counts per bucket, the review backlog over time, and the
progress rows of bulk jobs and onboardings.

Counts come from the store already grouped by bucket (``Oversight`` in ``ports.py``),
each bucket named by its key: the UTC instant it starts, as ``YYYY-MM-DD HH`` for hours
and ``YYYY-MM-DD`` for days (what both databases' SQL can write). This module places
them on the window's axis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from payerbridge.types import WorkerId

__all__ = [
    "CallEvent",
    "BucketCount",
    "CallSample",
    "Chart",
    "Grain",
    "Heartbeat",
    "JobProgress",
    "OnboardingProgress",
    "Period",
    "Series",
    "Window",
    "backlog_over",
    "bucket_key",
    "series_of",
    "window_for",
]


class Grain(StrEnum):
    HOUR = "hour"
    DAY = "day"


class Period(StrEnum):
    """How far back the dashboard looks, and in what buckets."""

    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"


_PERIODS: dict[Period, tuple[int, Grain]] = {
    Period.DAY: (24, Grain.HOUR),
    Period.WEEK: (7, Grain.DAY),
    Period.MONTH: (30, Grain.DAY),
}


def bucket_key(at: datetime, grain: Grain) -> str:
    """The key of the bucket holding ``at`` (UTC)."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H" if grain is Grain.HOUR else "%Y-%m-%d")


@dataclass(frozen=True)
class Window:
    """``buckets`` consecutive buckets of one ``grain``, the last holding ``now``."""

    starts: tuple[datetime, ...]
    grain: Grain

    @property
    def since(self) -> datetime:
        return self.starts[0]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(bucket_key(start, self.grain) for start in self.starts)

    def label(self, index: int) -> str:
        start = self.starts[index]
        return start.strftime("%H:00" if self.grain is Grain.HOUR else "%b %d")


def window_for(period: Period, now: datetime) -> Window:
    count, grain = _PERIODS[period]
    now = now.astimezone(UTC)
    if grain is Grain.HOUR:
        last, step = now.replace(minute=0, second=0, microsecond=0), timedelta(hours=1)
    else:
        last, step = now.replace(hour=0, minute=0, second=0, microsecond=0), timedelta(days=1)
    return Window(tuple(last - step * (count - 1 - i) for i in range(count)), grain)


@dataclass(frozen=True)
class BucketCount:
    """How many of one kind (a state, an outcome) fell in the bucket ``key``."""

    key: str
    kind: str
    count: int


@dataclass(frozen=True)
class Series:
    name: str
    points: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.points)


@dataclass(frozen=True)
class Chart:
    """One chart of the dashboard: its series over the window's buckets."""

    title: str
    window: Window
    series: tuple[Series, ...]
    stacked: bool = True  # bars stacked by series; False: lines
    note: str | None = None

    @property
    def is_empty(self) -> bool:
        return all(s.total == 0 for s in self.series)


def series_of(
    counts: Iterable[BucketCount], window: Window, *, order: Sequence[str] = ()
) -> tuple[Series, ...]:
    """The counts as one series per kind over the window (kinds in ``order`` first, then
    by name; counts outside the window left out)."""
    places = {key: i for i, key in enumerate(window.keys)}
    found: dict[str, list[int]] = {}
    for count in counts:
        place = places.get(count.key)
        if place is None:
            continue
        points = found.setdefault(count.kind, [0] * len(window.starts))
        points[place] += count.count
    ranked = [k for k in order if k in found] + sorted(k for k in found if k not in order)
    return tuple(Series(kind, tuple(found[kind])) for kind in ranked)


def backlog_over(
    window: Window, open_now: int, opened: Iterable[BucketCount], closed: Iterable[BucketCount]
) -> Series:
    """How many cases were open at the end of each bucket, from those open now and the
    cases opened and closed in each bucket (walked back from now)."""
    opened_in = series_of(opened, window)
    closed_in = series_of(closed, window)
    opens = [sum(s.points[i] for s in opened_in) for i in range(len(window.starts))]
    closes = [sum(s.points[i] for s in closed_in) for i in range(len(window.starts))]
    points = [0] * len(window.starts)
    level = open_now
    for i in reversed(range(len(window.starts))):
        points[i] = max(0, level)
        level = level - opens[i] + closes[i]
    return Series("open", tuple(points))


@dataclass(frozen=True)
class JobProgress:
    """A bulk job as the console lists it: no request body, no member data."""

    id: str
    kind: str
    status: str
    client_id: str
    total: int
    done: int
    created_at: datetime
    updated_at: datetime
    error: str | None

    @property
    def percent(self) -> int:
        return 100 if self.total == 0 else round(100 * self.done / self.total)


@dataclass(frozen=True)
class OnboardingProgress:
    """An onboarding as the console lists it: members matched and imported so far."""

    id: str
    partner_id: str
    client_id: str
    status: str
    total: int
    chunks: int
    chunks_done: int
    matched: int
    decided: int  # members with a match result, matched or not
    imported: int  # members whose data was imported
    created_at: datetime
    updated_at: datetime
    error: str | None

    @property
    def percent(self) -> int:
        return 100 if self.chunks == 0 else round(100 * self.chunks_done / self.chunks)


@dataclass(frozen=True)
class Heartbeat:
    """A worker's last beat, and the version of the platform it runs (DBOS recovers a
    workflow only on the version that started it)."""

    worker_id: WorkerId
    version: str
    beat_at: datetime


@dataclass(frozen=True)
class CallSample:
    """One call to the partner: ``answered`` False when no answer came (or a 5xx/429);
    ``kind`` names what came back for the error mix (``answered``, ``refused``, an error's
    name or ``http 503``); ``probe`` when the breaker's probe made it."""

    at: datetime
    answered: bool
    latency_ms: int
    kind: str
    probe: bool = False


@dataclass(frozen=True)
class CallEvent:
    """An audit event that may carry calls to a partner, as it is stored: an exchange's
    (``exchange_partner``: the exchange's partner) or a partner endpoint's (its detail
    names the partner). ``call_samples`` reads the calls in it."""

    entity_type: str
    detail: dict[str, Any]
    exchange_partner: str | None = None
