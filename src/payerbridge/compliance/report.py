"""The compliance report (pure): every obligation row started in a window, where each
stands now, counted per obligation with the reasons and the subjects behind each count;
and the report as JSON, CSV or a table.

A plan's window holds millions of rows, so the reader counts them where they are kept
(``ClockReader.tally``); the report lists the subjects behind the rows missed, at risk
and pending in full (few, and each is acted on) and the first ``subjects`` of the met
(and not started) ones; the CSV, every row, is written a page at a time as it is read.

The window is given as dates, read as whole days in the plan's calendar zone: ``from``
inclusive, ``to`` exclusive, at most ``MAX_DAYS`` long.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from itertools import product
from typing import Any
from zoneinfo import ZoneInfo

from payerbridge.compliance.clocks import ClockReader, ObligationClock, standing_now
from payerbridge.compliance.obligations import REQUIRED, Assessment, ObligationSet, Standing
from payerbridge.errors import InvalidInput, Issue

__all__ = [
    "DEFAULT_SUBJECTS",
    "FORMATS",
    "MAX_DAYS",
    "MAX_SUBJECTS",
    "ComplianceReport",
    "ObligationReport",
    "ReportLine",
    "ReportWindow",
    "StandingReport",
    "compliance_report",
    "reason_of",
    "report_csv",
    "report_json",
    "report_table",
    "report_window",
    "subjects_limit",
]

MAX_DAYS = 366
FORMATS = ("json", "csv")
# The standings a report counts, in the order it shows them.
COUNTED = (Standing.MET, Standing.MISSED, Standing.AT_RISK, Standing.PENDING)
SHOWN = (*COUNTED, Standing.NOT_STARTED)
# Whose subjects are listed in full (few, and someone acts on each), and whose only up to
# the report's ``subjects`` (a plan answers millions of requests a year, met).
IN_FULL = (Standing.MISSED, Standing.AT_RISK, Standing.PENDING)
LIMITED = (Standing.MET, Standing.NOT_STARTED)
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


def reason_of(standing: Standing, code: str | None, *, is_done: bool) -> str | None:
    """What held a row up: None for a row met; else the row's code, or where there is
    none, ``late`` (done after its due time), ``not-done`` (missed or at risk), None."""
    if standing is Standing.MET:
        return None
    if code:
        return code
    if standing is Standing.MISSED:
        return "late" if is_done else "not-done"
    return "not-done" if standing is Standing.AT_RISK else None


@dataclass(frozen=True)
class ReportLine:
    """One obligation row as it stands at the report's time."""

    clock: ObligationClock
    found: Assessment

    @property
    def reason(self) -> str | None:
        """What held it up (the row's code) for a row not met; else None."""
        is_done = self.clock.done_at is not None
        return reason_of(self.found.standing, self.clock.reason, is_done=is_done)


@dataclass(frozen=True)
class StandingReport:
    """The rows of one obligation that stand at ``standing``: how many, the reasons
    behind them (code: count) and the subjects shown, all of them unless ``truncated``."""

    standing: Standing
    count: int
    reasons: Mapping[str, int]
    lines: tuple[ReportLine, ...]

    @property
    def truncated(self) -> bool:
        return len(self.lines) < self.count


@dataclass(frozen=True)
class ObligationReport:
    obligation: str
    title: str
    role: str
    standings: Mapping[Standing, StandingReport]  # each of SHOWN

    def of(self, standing: Standing) -> tuple[ReportLine, ...]:
        return self.standings[standing].lines

    def counts(self) -> dict[str, int]:
        return {standing.value: self.standings[standing].count for standing in SHOWN}


@dataclass(frozen=True)
class ComplianceReport:
    window: ReportWindow
    at: datetime
    subjects: int  # the most subjects a list of met or not-started rows shows
    obligations: tuple[ObligationReport, ...]


def compliance_report(
    window: ReportWindow,
    reader: ClockReader,
    obligations: ObligationSet,
    now: datetime,
    *,
    subjects: int = DEFAULT_SUBJECTS,
) -> ComplianceReport:
    """The rows started in ``window``, assessed at ``now``, by obligation (those the
    platform acts on always, others where they have rows): counted by the reader, the
    subjects behind those missed, at risk and pending listed in full, the first
    ``subjects`` of the others."""
    risk = obligations.risk_windows()
    counted = reader.tally(window.start, window.end, now=now, risk=risk)
    names = _names(counted)
    lines: dict[tuple[str, Standing], list[ReportLine]] = defaultdict(list)

    def keep(clocks: Iterable[ObligationClock]) -> None:
        for clock in clocks:
            found = standing_now(obligations, clock, now)
            lines[(clock.obligation, found.standing)].append(ReportLine(clock, found))

    span = (window.start, window.end)
    keep(reader.standing_rows(*span, now=now, risk=risk, standings=IN_FULL))
    for name, standing in product(names, LIMITED):
        if subjects and any(key[:2] == (name, standing) for key in counted):
            only = (standing,)
            first = reader.standing_rows(
                *span, now=now, risk=risk, standings=only, obligation=name, limit=subjects
            )
            keep(first)
    return ComplianceReport(
        window,
        now,
        subjects,
        tuple(_obligation_report(obligations, name, counted, lines) for name in names),
    )


def _names(counted: Mapping[tuple[str, Standing, str | None, bool], int]) -> list[str]:
    """The obligations the platform acts on, and the others that have rows."""
    return sorted(REQUIRED) + sorted({key[0] for key in counted} - REQUIRED)


def _obligation_report(
    obligations: ObligationSet,
    name: str,
    counted: Mapping[tuple[str, Standing, str | None, bool], int],
    lines: Mapping[tuple[str, Standing], list[ReportLine]],
) -> ObligationReport:
    standings = {}
    for standing in SHOWN:
        count, reasons = 0, Counter[str]()
        for (obligation, at, code, is_done), n in counted.items():
            if (obligation, at) == (name, standing):
                count += n
                reason = reason_of(standing, code, is_done=is_done)
                if reason:
                    reasons[reason] += n
        kept = tuple(lines.get((name, standing), ()))
        standings[standing] = StandingReport(standing, count, dict(sorted(reasons.items())), kept)
    known = obligations.by_id.get(name)
    title = known.title if known else name
    role = known.role if known else ""
    return ObligationReport(name, title, role, standings)


def _line_json(line: ReportLine) -> dict[str, Any]:
    clock = line.clock
    return {
        "subject_type": clock.subject.type.value,
        "subject_id": clock.subject.id,
        "partner_id": clock.partner_id,
        "reason": line.reason,
        "why": line.found.why,
        "started_at": _iso(clock.started_at),
        "due_at": _iso(clock.due_at),
        "done_at": _iso(clock.done_at),
        "obligation_version": clock.obligation_version,
    }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def report_json(report: ComplianceReport) -> dict[str, Any]:
    """Per obligation: each standing's count, the reasons behind it (code: count), the
    subjects and whether they are all there (``truncated``: the met and not-started
    lists show the first ``subjects_limit``)."""
    shown = []
    for entry in report.obligations:
        by_standing: dict[str, Any] = {}
        for standing in SHOWN:
            part = entry.standings[standing]
            by_standing[standing.value] = {
                "count": part.count,
                "reasons": dict(part.reasons),
                "subjects": [_line_json(line) for line in part.lines],
                "truncated": part.truncated,
            }
        shown.append(
            {
                "obligation": entry.obligation,
                "title": entry.title,
                "role": entry.role,
                "counts": entry.counts(),
                **by_standing,
            }
        )
    return {
        "from": report.window.first.isoformat(),
        "to": report.window.last.isoformat(),
        "at": report.at.isoformat(),
        "subjects_limit": report.subjects,
        "obligations": shown,
    }


CSV_COLUMNS = (
    "obligation",
    "standing",
    "reason",
    "subject_type",
    "subject_id",
    "partner_id",
    "started_at",
    "due_at",
    "done_at",
    "why",
    "obligation_version",
)


def report_csv(
    window: ReportWindow,
    reader: ClockReader,
    obligations: ObligationSet,
    now: datetime,
    *,
    page: int = 1000,
) -> Iterator[str]:
    """Every row started in ``window``, one line each (its obligation, standing and
    reason, the subject and its times), by obligation and then as they started: the
    header and then a chunk of text per ``page`` rows, read from ``reader`` as they are
    written. The obligations are counted first, so a reader that fails does so here,
    before anything is written."""
    risk = obligations.risk_windows()
    counted = reader.tally(window.start, window.end, now=now, risk=risk)
    return _csv_chunks(window, reader, obligations, now, _names(counted), page)


def _csv_chunks(
    window: ReportWindow,
    reader: ClockReader,
    obligations: ObligationSet,
    now: datetime,
    names: list[str],
    page: int,
) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    written = 0
    for name in names:
        for clock in reader.started_between(window.start, window.end, obligation=name, page=page):
            line = ReportLine(clock, standing_now(obligations, clock, now))
            shown = _line_json(line) | {"obligation": name, "standing": line.found.standing.value}
            writer.writerow(["" if shown[c] is None else shown[c] for c in CSV_COLUMNS])
            written += 1
            if written % page == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
    yield out.getvalue()


def report_table(report: ComplianceReport) -> str:
    """The counts per obligation, the reasons, and each row missed or at risk."""
    window = report.window
    out = [f"Compliance from {window.first} to {window.last} (not included), at {report.at}"]
    for entry in report.obligations:
        counts = entry.counts()
        tally = ", ".join(f"{name} {count}" for name, count in counts.items() if count)
        out.append(f"\n{entry.obligation} ({entry.role}): {tally or 'nothing started'}")
        for standing in (Standing.MISSED, Standing.AT_RISK):
            for line in entry.of(standing):
                clock = line.clock
                partner = f" partner {clock.partner_id}" if clock.partner_id else ""
                out.append(
                    f"  {standing.value:8} {clock.subject.type.value} {clock.subject.id}"
                    f"{partner}: {line.reason} ({line.found.why})"
                )
    return "\n".join(out) + "\n"
