"""Standing pulls (pure): a member's data asked of one old payer: first once coverage
has started and the member opted in, again at least quarterly while coverage is
concurrent, and run-off after it ended until the opt-in's period ends; each pull after
the first an exchange asked ``since`` the last successful one's data was received
(issue 54, ADR 0040).

The cadence is the obligations file's (ADR 0037): each pull a schedule owes has a
period, the obligation it meets and when that period ends; a pull starts a week before
its period's warning, so it is asked in time and never waits to be at risk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from payerbridge.compliance.obligations import (
    QUARTERLY,
    REQUEST_AFTER_ENROLMENT,
    RUN_OFF,
    ObligationSet,
)
from payerbridge.exchange.model import PullKind

__all__ = [
    "LEAD",
    "RETRY_AFTER",
    "Period",
    "coverage_ends",
    "first_period",
    "next_period",
    "pull_key",
]

# A repeat's pull starts this long before its period's warning.
LEAD = timedelta(days=7)
# A pull that ended without the old payer's answer (an outage) is tried again this soon,
# and a settled pull is looked at this soon after it started.
RETRY_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Period:
    """The next pull a schedule owes: its kind, the obligation it meets (None: none is
    owed before the opt-in ends, so the schedule only waits for that), when the period
    started and ends, and when to start the pull."""

    kind: PullKind
    obligation: str | None
    started_at: datetime
    due_at: datetime | None
    start_at: datetime


def first_period(
    obligations: ObligationSet, coverage_start: datetime | None, opt_in: datetime
) -> Period:
    """The first request, owed a week (by the file) after the later of the new
    coverage's start and the opt-in; started as soon as both have come."""
    events = {"coverage_start": coverage_start or opt_in, "opt_in": opt_in}
    started = max(events.values())
    due = obligations.due(REQUEST_AFTER_ENROLMENT, events)
    return Period(PullKind.FIRST, REQUEST_AFTER_ENROLMENT, started, due, started)


def next_period(
    obligations: ObligationSet,
    after: datetime,
    coverage_end: datetime | None,
    consent_end: datetime | None,
) -> Period:
    """The period after a pull that started at ``after``: quarterly while coverage at
    the old payer goes on past the quarter, else run-off from its end (or from ``after``,
    once it has ended); none owed when the period would end after the opt-in does."""
    quarter_end = obligations.period_end(QUARTERLY, after)
    if coverage_end is None or quarter_end < coverage_end:
        kind, obligation, started = PullKind.QUARTERLY, QUARTERLY, after
    else:
        kind, obligation, started = PullKind.RUN_OFF, RUN_OFF, max(coverage_end, after)
    due = obligations.period_end(obligation, started)
    if consent_end is not None and due > consent_end:
        return Period(kind, None, started, None, max(started, consent_end))
    warning = obligations.warning(obligation)
    warned = warning.before(due) if warning is not None else due
    return Period(kind, obligation, started, due, max(started, warned - LEAD))


def coverage_ends(day: date | None) -> datetime | None:
    """The day coverage at the old payer ends, as given to the API and the CLI, as the
    instant a schedule keeps: that day's first instant in UTC (None: no end known)."""
    return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC)


def pull_key(schedule_id: str, number: int) -> str:
    """The Idempotency-Key of a schedule's ``number``-th pull: a step run again after a
    crash finds the exchange it submitted rather than submitting another."""
    return f"pull:{schedule_id}:{number}"
