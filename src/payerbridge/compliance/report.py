"""The compliance report (pure): every obligation row started in a window, where each
stands now, counted per obligation with the reasons and the subjects behind each count;
and the report as JSON, CSV or a table, one a plan can hand a regulator.

Our duties stand apart from partners': each obligation is reported once per duty
(``clocks.Duty``): ours as the new payer asking, ours as the old payer answering, and
the old payer's answer time as we saw it, which is labelled observed and counted in a
total of its own, never in ours. The report names the plan (``PlanIdentity``: its
organization, NPI and base URL), when it was made, its window and calendar zone, the
obligations file's version and the software's; each obligation carries its citation,
source, confirmation status and caveat as the obligations file holds them. Rows closed
(an opt-in revoked, a member gone) are counted apart, neither met nor missed.

A plan's window holds millions of rows, so the reader counts them where they are kept
(``ClockReader.tally``); the report lists the subjects behind the rows missed, at risk
and pending in full (few, and each is acted on) and the first ``subjects`` of the met
(and not started) ones; the CSV, every row, is written a page at a time as it is read.

The window is given as dates, read as whole days in the plan's calendar zone: ``from``
inclusive, ``to`` exclusive, at most ``MAX_DAYS`` long (``compliance.report_window``).
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import product
from typing import Any

from payerbridge.compliance.clocks import (
    ClockReader,
    Duty,
    ObligationClock,
    SubjectType,
    Tally,
    duty_of,
    standing_now,
)
from payerbridge.compliance.model import Standing, StandingQuery
from payerbridge.compliance.obligations import (
    ANSWER_WITHIN,
    REQUIRED,
    Assessment,
    Obligation,
    ObligationSet,
)
from payerbridge.compliance.report_window import (
    DEFAULT_SUBJECTS,
    MAX_DAYS,
    MAX_SUBJECTS,
    ReportWindow,
    report_window,
    subjects_limit,
)

__all__ = [
    "DEFAULT_SUBJECTS",
    "FORMATS",
    "MAX_DAYS",
    "MAX_SUBJECTS",
    "ComplianceReport",
    "ObligationReport",
    "PlanIdentity",
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

FORMATS = ("json", "csv")
# The standings a report counts, in the order it shows them; closed rows apart.
COUNTED = (Standing.MET, Standing.MISSED, Standing.AT_RISK, Standing.PENDING)
SHOWN = (*COUNTED, Standing.CLOSED, Standing.NOT_STARTED)
# Whose subjects are listed in full (few, and someone acts on each), and whose only up to
# the report's ``subjects`` (a plan answers millions of requests a year, met).
IN_FULL = (Standing.MISSED, Standing.AT_RISK, Standing.PENDING)
LIMITED = (Standing.MET, Standing.CLOSED, Standing.NOT_STARTED)
TITLE = "Payer-to-payer exchange: compliance with the rule's clocks (CMS-0057-F)"
OBSERVED_NOTE = (
    "The previous payers' answer times as this plan saw them: their duty, observed here, "
    "not this plan's compliance; a partner's slowness is never counted as this plan's miss."
)
# The subjects of each duty, for listing the rows of one obligation's duty.
_SUBJECTS = {
    Duty.OURS_REQUESTING: frozenset(
        {SubjectType.EXCHANGE, SubjectType.PULL, SubjectType.ONBOARDING}
    ),
    Duty.OURS_ANSWERING: frozenset({SubjectType.REVIEW, SubjectType.REQUEST, SubjectType.BULK_JOB}),
    Duty.PARTNER_OBSERVED: frozenset({SubjectType.EXCHANGE, SubjectType.ONBOARDING_CHUNK}),
}


@dataclass(frozen=True)
class PlanIdentity:
    """Who the report is of: the plan's organization, its NPI, the deployment's base URL,
    and the software that made the report."""

    name: str
    npi: str
    base_url: str | None
    software_version: str


def reason_of(standing: Standing, code: str | None, *, is_done: bool) -> str | None:
    """What held a row up: None for a row met; else the row's code, or where there is
    none, ``late`` (done after its due time), ``not-done`` (missed or at risk), None."""
    if standing is Standing.MET:
        return None
    if code:  # a closed row's is why it was closed
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
    """One obligation's rows of one duty (ours, or a partner's observed)."""

    obligation: str
    title: str
    role: str
    duty: Duty
    rule: Obligation | None  # None: the file no longer has it
    standings: Mapping[Standing, StandingReport]  # each of SHOWN

    def of(self, standing: Standing) -> tuple[ReportLine, ...]:
        return self.standings[standing].lines

    def counts(self) -> dict[str, int]:
        return {standing.value: self.standings[standing].count for standing in SHOWN}


@dataclass(frozen=True)
class ComplianceReport:
    window: ReportWindow
    at: datetime
    subjects: int  # the most subjects a list of met, closed or not-started rows shows
    obligations: tuple[ObligationReport, ...]  # ours first, then partners' observed
    plan: PlanIdentity | None = None
    zone: str = ""  # the calendar's
    version: str = ""  # the obligations file's

    def of_duty(self, *, ours: bool) -> tuple[ObligationReport, ...]:
        return tuple(entry for entry in self.obligations if entry.duty.is_ours is ours)

    def totals(self, *, ours: bool) -> dict[str, int]:
        """The counts of our duties, or of partners' observed, summed over obligations."""
        total = Counter[str]({standing.value: 0 for standing in SHOWN})
        for entry in self.of_duty(ours=ours):
            total.update(entry.counts())
        return dict(total)


def compliance_report(
    window: ReportWindow,
    reader: ClockReader,
    obligations: ObligationSet,
    now: datetime,
    *,
    subjects: int = DEFAULT_SUBJECTS,
    plan: PlanIdentity | None = None,
) -> ComplianceReport:
    """The rows started in ``window``, assessed at ``now``, by obligation and duty (those
    the platform acts on always, others where they have rows): counted by the reader, the
    subjects behind those missed, at risk and pending listed in full, the first
    ``subjects`` of the others."""
    risk = obligations.risk_windows()
    counted = reader.tally(window.start, window.end, now=now, risk=risk)
    keys = _keys(obligations, counted)
    lines: dict[tuple[str, Duty, Standing], list[ReportLine]] = defaultdict(list)

    def keep(clocks: Iterable[ObligationClock]) -> None:
        for clock in clocks:
            found = standing_now(obligations, clock, now)
            duty = _duty(obligations, clock.obligation, clock.subject.type)
            lines[(clock.obligation, duty, found.standing)].append(ReportLine(clock, found))

    span = (window.start, window.end)
    keep(reader.standing_rows(StandingQuery(*span, now, risk, IN_FULL)))
    for (name, duty), standing in product(keys, LIMITED):
        if subjects and any(
            (key[0], key[2]) == (name, standing) and _duty(obligations, name, key[1]) is duty
            for key in counted
        ):
            first = reader.standing_rows(
                StandingQuery(*span, now, risk, (standing,), name, _SUBJECTS[duty], subjects)
            )
            keep(clock for clock in first if _duty(obligations, name, clock.subject.type) is duty)
    return ComplianceReport(
        window,
        now,
        subjects,
        tuple(_obligation_report(obligations, key, counted, lines) for key in keys),
        plan,
        obligations.calendar.zone,
        obligations.version,
    )


def _duty(obligations: ObligationSet, name: str, subject: SubjectType) -> Duty:
    known = obligations.by_id.get(name)
    return duty_of(known.role if known else None, subject)


def _keys(obligations: ObligationSet, counted: Mapping[Tally, int]) -> list[tuple[str, Duty]]:
    """(obligation, duty) of what the report shows: the obligations the platform acts on
    as our duty, the old payer's answer as we observe it, and the others that have rows;
    ours first."""
    shown = {(name, _duty(obligations, name, _own_subject(obligations, name))) for name in REQUIRED}
    shown.add((ANSWER_WITHIN, Duty.PARTNER_OBSERVED))
    shown |= {(key[0], _duty(obligations, key[0], key[1])) for key in counted}
    order = {name: n for n, name in enumerate(sorted(REQUIRED))}
    return sorted(shown, key=lambda k: (not k[1].is_ours, k[0] not in order, order.get(k[0], 0), k))


def _own_subject(obligations: ObligationSet, name: str) -> SubjectType:
    """A subject of our own duty of the obligation ``name`` (to tell the duty by)."""
    known = obligations.by_id.get(name)
    return SubjectType.REQUEST if known and known.role == "responder" else SubjectType.EXCHANGE


def _obligation_report(
    obligations: ObligationSet,
    key: tuple[str, Duty],
    counted: Mapping[Tally, int],
    lines: Mapping[tuple[str, Duty, Standing], list[ReportLine]],
) -> ObligationReport:
    name, duty = key
    standings = {}
    for standing in SHOWN:
        count, reasons = 0, Counter[str]()
        for (obligation, subject, at, code, is_done), n in counted.items():
            if (obligation, at) == (name, standing) and _duty(obligations, name, subject) is duty:
                count += n
                reason = reason_of(standing, code, is_done=is_done)
                if reason:
                    reasons[reason] += n
        kept = tuple(lines.get((name, duty, standing), ()))
        standings[standing] = StandingReport(standing, count, dict(sorted(reasons.items())), kept)
    known = obligations.by_id.get(name)
    title = known.title if known else name
    role = known.role if known else ""
    return ObligationReport(name, title, role, duty, known, standings)


def _line_json(line: ReportLine) -> dict[str, Any]:
    clock = line.clock
    closed = line.found.standing is Standing.CLOSED
    return {
        "subject_type": clock.subject.type.value,
        "subject_id": clock.subject.id,
        "partner_id": clock.partner_id,
        "reason": line.reason,
        "why": line.found.why,
        "started_at": _iso(clock.started_at),
        "due_at": _iso(clock.due_at),
        "done_at": None if closed else _iso(clock.done_at),
        "closed_at": _iso(clock.done_at) if closed else None,
        "obligation_version": clock.obligation_version,
    }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _source_json(rule: Obligation | None) -> dict[str, Any]:
    """The rule's citation as the obligations file holds it, its caveat kept."""
    if rule is None:
        return {
            "citation": None,
            "document": None,
            "confirmed": False,
            "status": "not in the obligations file now",
            "caveat": "This obligation is no longer in the plan's obligations file.",
        }
    source = rule.source
    return {
        "citation": source.citation,
        "document": source.document,
        "confirmed": source.confirmed,
        "status": source.status,
        "caveat": source.caveat,
    }


def _counted_as(duty: Duty) -> str:
    return "our compliance" if duty.is_ours else "observed: a partner's duty, not our compliance"


def _entry_json(entry: ObligationReport) -> dict[str, Any]:
    by_standing: dict[str, Any] = {}
    for standing in SHOWN:
        part = entry.standings[standing]
        by_standing[standing.value] = {
            "count": part.count,
            "reasons": dict(part.reasons),
            "subjects": [_line_json(line) for line in part.lines],
            "truncated": part.truncated,
        }
    return {
        "obligation": entry.obligation,
        "title": entry.title,
        "role": entry.role,
        "duty": entry.duty.value,
        "counted_as": _counted_as(entry.duty),
        "source": _source_json(entry.rule),
        "counts": entry.counts(),
        **by_standing,
    }


def _plan_json(plan: PlanIdentity | None) -> dict[str, Any]:
    if plan is None:
        return {"name": None, "npi": None, "base_url": None}
    return {"name": plan.name, "npi": plan.npi, "base_url": plan.base_url}


def report_json(report: ComplianceReport) -> dict[str, Any]:
    """Who and when (the plan, the window, the calendar zone, the versions); our duties
    (``obligations``, with ``totals``) apart from partners' answer times we observed
    (``partners_observed``, with its own totals); per obligation its source and each
    standing's count, the reasons behind it (code: count), the subjects and whether they
    are all there (``truncated``: the met, closed and not-started lists show the first
    ``subjects_limit``)."""
    ours = report.of_duty(ours=True)
    by_duty = {
        duty.value: dict(sum((Counter(e.counts()) for e in ours if e.duty is duty), Counter[str]()))
        for duty in (Duty.OURS_REQUESTING, Duty.OURS_ANSWERING)
    }
    plan = report.plan
    return {
        "title": TITLE,
        "plan": _plan_json(plan),
        "generated_at": report.at.isoformat(),
        "from": report.window.first.isoformat(),
        "to": report.window.last.isoformat(),
        "to_included": False,
        "calendar_zone": report.zone,
        "obligations_version": report.version,
        "software": {"name": "payerbridge", "version": plan.software_version if plan else None},
        "at": report.at.isoformat(),
        "subjects_limit": report.subjects,
        "totals": report.totals(ours=True),
        "totals_by_duty": by_duty,
        "obligations": [_entry_json(entry) for entry in ours],
        "partners_observed": {
            "note": OBSERVED_NOTE,
            "totals": report.totals(ours=False),
            "obligations": [_entry_json(entry) for entry in report.of_duty(ours=False)],
        },
    }


CSV_COLUMNS = (
    "obligation",
    "duty",
    "counted_as",
    "standing",
    "reason",
    "subject_type",
    "subject_id",
    "partner_id",
    "started_at",
    "due_at",
    "done_at",
    "closed_at",
    "why",
    "obligation_version",
    "citation",
    "source_document",
    "confirmation",
    "caveat",
    "plan_name",
    "plan_npi",
    "plan_base_url",
    "generated_at",
    "window_from",
    "window_to",
    "calendar_zone",
    "software_version",
)


def report_csv(
    window: ReportWindow,
    reader: ClockReader,
    obligations: ObligationSet,
    now: datetime,
    *,
    page: int = 1000,
    plan: PlanIdentity | None = None,
) -> Iterator[str]:
    """Every row started in ``window``, one line each (its obligation, whose duty it is,
    its standing and reason, the subject and its times, the rule's citation and status,
    and on every line the plan and the report's window, time, zone and version, so any
    line stands alone), by obligation and then as they started: the header and then a
    chunk of text per ``page`` rows, read from ``reader`` as they are written. The
    obligations are counted first, so a reader that fails does so here, before anything
    is written."""
    risk = obligations.risk_windows()
    counted = reader.tally(window.start, window.end, now=now, risk=risk)
    names = list(dict.fromkeys(name for name, _ in _keys(obligations, counted)))
    about = {
        "plan_name": plan.name if plan else None,
        "plan_npi": plan.npi if plan else None,
        "plan_base_url": plan.base_url if plan else None,
        "generated_at": now.isoformat(),
        "window_from": window.first.isoformat(),
        "window_to": window.last.isoformat(),
        "calendar_zone": obligations.calendar.zone,
        "software_version": plan.software_version if plan else None,
    }
    return _csv_chunks(window, reader, obligations, now, names, page, about)


def _csv_chunks(
    window: ReportWindow,
    reader: ClockReader,
    obligations: ObligationSet,
    now: datetime,
    names: list[str],
    page: int,
    about: dict[str, Any],
) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    written = 0
    for name in names:
        rule = obligations.by_id.get(name)
        source = _source_json(rule)
        cited = {
            "citation": source["citation"],
            "source_document": source["document"],
            "confirmation": source["status"],
            "caveat": source["caveat"],
        }
        for clock in reader.started_between(window.start, window.end, obligation=name, page=page):
            line = ReportLine(clock, standing_now(obligations, clock, now))
            duty = _duty(obligations, name, clock.subject.type)
            shown = _line_json(line) | about | cited
            shown |= {"obligation": name, "standing": line.found.standing.value}
            shown |= {"duty": duty.value, "counted_as": _counted_as(duty)}
            writer.writerow(["" if shown[c] is None else shown[c] for c in CSV_COLUMNS])
            written += 1
            if written % page == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
    yield out.getvalue()


def report_table(report: ComplianceReport) -> str:
    """Who and when; our duties with their totals, then partners' answer times we
    observed (apart); per obligation its counts, source and caveat, and each row missed
    or at risk."""
    window, plan = report.window, report.plan
    out = [TITLE]
    if plan is not None:
        out.append(f"Plan: {plan.name} (NPI {plan.npi}) at {plan.base_url or '-'}")
    out.append(
        f"Window: {window.first} to {window.last} (not included), calendar {report.zone}; "
        f"generated {report.at.isoformat()}; obligations {report.version}; "
        f"payerbridge {plan.software_version if plan else '-'}"
    )
    for ours, heading in ((True, "OUR DUTIES"), (False, "PARTNERS' ANSWER TIMES (observed)")):
        totals = report.totals(ours=ours)
        out.append(f"\n{heading}: {_tally(totals) or 'nothing started'}")
        if not ours:
            out.append(f"  {OBSERVED_NOTE}")
        for entry in report.of_duty(ours=ours):
            out.extend(_table_entry(entry))
    return "\n".join(out) + "\n"


def _tally(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items() if count)


def _table_entry(entry: ObligationReport) -> list[str]:
    tally = _tally(entry.counts())
    out = [f"\n{entry.obligation} ({entry.duty.value}): {tally or 'nothing started'}"]
    source = _source_json(entry.rule)
    cited = f"  source: {source['citation']}"
    if source["document"]:
        cited += f", {source['document']}"
    out.append(f"{cited} [{source['status']}]")
    if source["caveat"]:
        out.append(f"  caveat: {source['caveat']}")
    for standing in (Standing.MISSED, Standing.AT_RISK):
        for line in entry.of(standing):
            clock = line.clock
            partner = f" partner {clock.partner_id}" if clock.partner_id else ""
            out.append(
                f"  {standing.value:8} {clock.subject.type.value} {clock.subject.id}"
                f"{partner}: {line.reason} ({line.found.why})"
            )
    return out
