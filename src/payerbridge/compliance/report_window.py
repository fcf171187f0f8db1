"""What a compliance report is asked for (pure): its window, dates read as whole days in
the plan's calendar zone (``from`` inclusive, ``to`` exclusive, at most ``MAX_DAYS``
long), and how many subjects each list of met, closed or not-started rows shows; each
problem named, as an OperationOutcome issue, on the parameter at fault."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from payerbridge.errors import InvalidInput, Issue

__all__ = [
    "DEFAULT_SUBJECTS",
    "MAX_DAYS",
    "MAX_SUBJECTS",
    "ReportWindow",
    "report_window",
    "subjects_limit",
]

MAX_DAYS = 366
DEFAULT_SUBJECTS = 100
MAX_SUBJECTS = 10_000


@dataclass(frozen=True)
class ReportWindow:
    """[start, end): the first instants of the ``first`` day and of the ``last`` (given)
    day, in the plan's zone."""

    first: date
    last: date
    start: datetime
    end: datetime


def report_window(first: str | None, last: str | None, zone: str) -> ReportWindow:
    """The window of ``from`` and ``to`` (YYYY-MM-DD); InvalidInput naming each problem."""
    issues: list[Issue] = []
    days: dict[str, date] = {}
    for name, text in (("from", first), ("to", last)):
        if not text:
            issues.append(Issue(f"'{name}' is required: a date, YYYY-MM-DD", name, "required"))
            continue
        try:
            days[name] = date.fromisoformat(text)
        except ValueError:
            issues.append(Issue(f"'{name}' must be a date, YYYY-MM-DD (got '{text}')", name))
            continue
        if len(text) != 10:  # fromisoformat also takes 20260101 and 2026-W01-1
            issues.append(Issue(f"'{name}' must be a date, YYYY-MM-DD (got '{text}')", name))
    if not issues and days["from"] >= days["to"]:
        issues.append(Issue("'from' must be before 'to' ('to' is not included)", "to"))
    if not issues and (days["to"] - days["from"]).days > MAX_DAYS:
        issues.append(Issue(f"the window may span at most {MAX_DAYS} days", "to"))
    if issues:
        raise InvalidInput(issues[0].text, issues=issues)
    tz = ZoneInfo(zone)
    start = datetime.combine(days["from"], time(), tz)
    end = datetime.combine(days["to"], time(), tz)
    return ReportWindow(days["from"], days["to"], start, end)


def subjects_limit(text: str | None, name: str = "_subjects") -> int:
    """How many subjects each list of met (and not started) rows shows, given as ``name``:
    ``DEFAULT_SUBJECTS`` when not given, at most ``MAX_SUBJECTS``; InvalidInput naming it."""
    if text is None:
        return DEFAULT_SUBJECTS
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_SUBJECTS:
        problem = f"'{name}' must be a whole number from 0 to {MAX_SUBJECTS} (got '{text[:20]}')"
        raise InvalidInput(problem, issues=[Issue(problem, name)])
    return int(text)
