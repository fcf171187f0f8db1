"""The compliance report (pure): every obligation row started in a window, where each
stands now, counted per obligation with the reasons and the subjects behind each count;
and the report as JSON, CSV or a table.

The window is given as dates, read as whole days in the plan's calendar zone: ``from``
inclusive, ``to`` exclusive, at most ``MAX_DAYS`` long.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from payerbridge.compliance.clocks import ClockReader, ObligationClock, standing_now
from payerbridge.compliance.obligations import REQUIRED, Assessment, ObligationSet, Standing
from payerbridge.errors import InvalidInput, Issue

__all__ = [
    "FORMATS",
    "MAX_DAYS",
    "ComplianceReport",
    "ObligationReport",
    "ReportLine",
    "ReportWindow",
    "compliance_report",
    "report_csv",
    "report_json",
    "report_table",
    "report_window",
]

MAX_DAYS = 366
FORMATS = ("json", "csv")
# The standings a report counts, in the order it shows them.
COUNTED = (Standing.MET, Standing.MISSED, Standing.AT_RISK, Standing.PENDING)


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


@dataclass(frozen=True)
class ReportLine:
    """One obligation row as it stands at the report's time."""

    clock: ObligationClock
    found: Assessment

    @property
    def reason(self) -> str | None:
        """What held it up (the row's code) for a row not met; else None."""
        if self.found.standing is Standing.MET:
            return None
        return self.clock.reason or _plain(self.found)


def _plain(found: Assessment) -> str | None:
    if found.standing is Standing.MISSED:
        return "late" if found.why.startswith("done") else "not-done"
    if found.standing is Standing.AT_RISK:
        return "not-done"
    return None


@dataclass(frozen=True)
class ObligationReport:
    obligation: str
    title: str
    role: str
    lines: tuple[ReportLine, ...]

    def of(self, standing: Standing) -> list[ReportLine]:
        return [line for line in self.lines if line.found.standing is standing]

    def counts(self) -> dict[str, int]:
        tally = Counter(line.found.standing for line in self.lines)
        return {standing.value: tally[standing] for standing in (*COUNTED, Standing.NOT_STARTED)}


@dataclass(frozen=True)
class ComplianceReport:
    window: ReportWindow
    at: datetime
    obligations: tuple[ObligationReport, ...]


def compliance_report(
    window: ReportWindow, reader: ClockReader, obligations: ObligationSet, now: datetime
) -> ComplianceReport:
    """Every row started in ``window``, assessed at ``now``, by obligation: those the
    platform acts on always, others where they have rows."""
    lines: dict[str, list[ReportLine]] = {name: [] for name in sorted(REQUIRED)}
    for clock in reader.started_between(window.start, window.end):
        found = standing_now(obligations, clock, now)
        lines.setdefault(clock.obligation, []).append(ReportLine(clock, found))
    reports = []
    for name, kept in lines.items():
        known = obligations.by_id.get(name)
        title = known.title if known else name
        role = known.role if known else ""
        reports.append(ObligationReport(name, title, role, tuple(kept)))
    return ComplianceReport(window, now, tuple(reports))


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
    """Per obligation: each standing's count, the reasons behind it (code: count) and the
    subjects."""
    shown = []
    for entry in report.obligations:
        by_standing: dict[str, Any] = {}
        for standing in (*COUNTED, Standing.NOT_STARTED):
            kept = entry.of(standing)
            reasons = Counter(line.reason for line in kept if line.reason)
            by_standing[standing.value] = {
                "count": len(kept),
                "reasons": dict(sorted(reasons.items())),
                "subjects": [_line_json(line) for line in kept],
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


def report_csv(report: ComplianceReport) -> str:
    """One line per row: its obligation, standing and reason, the subject and its times."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in report.obligations:
        for line in entry.lines:
            shown = _line_json(line)
            shown |= {"obligation": entry.obligation, "standing": line.found.standing.value}
            writer.writerow(["" if shown[c] is None else shown[c] for c in CSV_COLUMNS])
    return out.getvalue()


def report_table(report: ComplianceReport) -> str:
    """The counts per obligation, the reasons, and each row not met or pending."""
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
