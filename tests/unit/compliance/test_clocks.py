"""Obligation rows and the compliance report (pure): where a row stands at read time, the
report's window, its counts, reasons and subjects (the met ones up to a limit), and its
JSON and its CSV written a page at a time."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.compliance.calendar import BusinessCalendar
from payerbridge.compliance.clocks import (
    ObligationClock,
    Subject,
    SubjectType,
    Tally,
    new_clock,
    standing_now,
)
from payerbridge.compliance.model import Standing, StandingQuery
from payerbridge.compliance.obligations import (
    ANSWER_WITHIN,
    REQUEST_AFTER_ENROLMENT,
    shipped_obligations,
)
from payerbridge.compliance.report import (
    compliance_report,
    reason_of,
    report_csv,
    report_json,
    report_table,
    report_window,
    subjects_limit,
)
from payerbridge.errors import InvalidInput

OBLIGATIONS = shipped_obligations(BusinessCalendar("America/New_York", frozenset({5, 6})))
MONDAY = datetime(2027, 3, 1, 14, 0, tzinfo=UTC)
_ORDER = {Standing.PENDING: 0, Standing.AT_RISK: 1, Standing.MISSED: 2}


def _exchange_clock(n: int, **changes: object) -> ObligationClock:
    clock = new_clock(
        OBLIGATIONS,
        REQUEST_AFTER_ENROLMENT,
        Subject(SubjectType.EXCHANGE, f"ex-{n}"),
        {"coverage_start": MONDAY, "opt_in": MONDAY - timedelta(days=2)},
        clock_id=f"c-{n}",
        at=MONDAY,
        partner_id="old-payer",
    )
    return replace(clock, **changes)  # type: ignore[arg-type]


def test_a_request_clock_starts_at_the_later_event_and_is_due_a_week_on() -> None:
    clock = _exchange_clock(1)
    assert clock.started_at == MONDAY
    assert clock.due_at == MONDAY + timedelta(days=7)
    assert clock.standing is Standing.PENDING


def test_an_answer_is_due_at_the_close_of_the_next_business_day() -> None:
    friday = datetime(2027, 3, 5, 20, 0, tzinfo=UTC)  # 15:00 in New York
    clock = new_clock(
        OBLIGATIONS,
        ANSWER_WITHIN,
        Subject(SubjectType.REVIEW, "case-1"),
        {"request_received": friday},
        clock_id="c",
        at=friday,
    )
    assert clock.due_at is not None and clock.due_at.astimezone(UTC).date() == date(2027, 3, 9)


@given(
    due_hours=st.integers(min_value=1, max_value=24 * 14),
    steps=st.lists(st.integers(min_value=0, max_value=24 * 30), min_size=2, max_size=6),
)
def test_a_row_not_done_only_moves_towards_missed_as_time_passes(
    due_hours: int, steps: list[int]
) -> None:
    clock = _exchange_clock(1, due_at=MONDAY + timedelta(hours=due_hours))
    seen = [
        standing_now(OBLIGATIONS, clock, MONDAY + timedelta(hours=h)).standing
        for h in sorted(steps)
    ]
    ranks = [_ORDER[standing] for standing in seen]
    assert ranks == sorted(ranks)


@given(done_hours=st.integers(0, 24 * 20), later=st.integers(0, 24 * 60))
def test_a_row_done_stands_the_same_whenever_it_is_read(done_hours: int, later: int) -> None:
    done = MONDAY + timedelta(hours=done_hours)
    clock = _exchange_clock(1, done_at=done)
    first = standing_now(OBLIGATIONS, clock, done)
    assert standing_now(OBLIGATIONS, clock, done + timedelta(hours=later)) == first
    assert first.standing is (Standing.MET if done_hours <= 24 * 7 else Standing.MISSED)


def test_the_stored_standing_is_not_trusted() -> None:
    stale = _exchange_clock(1, standing=Standing.PENDING)
    found = standing_now(OBLIGATIONS, stale, MONDAY + timedelta(days=9))
    assert found.standing is Standing.MISSED
    assert found.why == "not done, 2 days overdue"


@pytest.mark.parametrize(
    ("first", "last", "problem"),
    [
        (None, "2027-03-01", "'from' is required"),
        ("2027-03-01", None, "'to' is required"),
        ("2027-3-1", "2027-04-01", "'from' must be a date"),
        ("20270301", "2027-04-01", "'from' must be a date"),
        ("2027-03-01", "yesterday", "'to' must be a date"),
        ("2027-03-01", "2027-03-01", "'from' must be before 'to'"),
        ("2027-04-01", "2027-03-01", "'from' must be before 'to'"),
        ("2026-01-01", "2027-03-01", "at most 366 days"),
    ],
)
def test_a_window_that_cannot_be_used_names_the_problem(
    first: str | None, last: str | None, problem: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        report_window(first, last, "America/New_York")
    assert problem in raised.value.text


def test_a_window_is_whole_days_in_the_plans_zone() -> None:
    window = report_window("2027-03-01", "2027-03-02", "America/New_York")
    assert window.start == datetime(2027, 3, 1, 5, 0, tzinfo=UTC)
    assert window.end - window.start == timedelta(days=1)


class _Rows:
    """``ClockReader`` over a list, deciding each row by the pure rule."""

    def __init__(self, *clocks: ObligationClock) -> None:
        self.clocks = sorted(clocks, key=lambda c: (c.started_at, c.id))
        self.read = 0  # rows handed out, listed or streamed

    def _in(self, start: datetime, end: datetime) -> list[ObligationClock]:
        return [c for c in self.clocks if start <= c.started_at < end]

    def tally(
        self, start: datetime, end: datetime, *, now: datetime, risk: Mapping[str, timedelta]
    ) -> dict[Tally, int]:
        assert risk == OBLIGATIONS.risk_windows()
        return dict(
            Counter(
                (
                    c.obligation,
                    c.subject.type,
                    standing_now(OBLIGATIONS, c, now).standing,
                    c.reason,
                    bool(c.done_at),
                )
                for c in self._in(start, end)
            )
        )

    def standing_rows(self, query: StandingQuery) -> list[ObligationClock]:
        start, end, now, standings = query.start, query.end, query.now, query.standings
        obligation, subject_types, limit = query.obligation, query.subject_types, query.limit
        found = [
            c
            for c in self._in(start, end)
            if standing_now(OBLIGATIONS, c, now).standing in standings
            and obligation in (None, c.obligation)
            and (subject_types is None or c.subject.type in subject_types)
        ][:limit]
        self.read += len(found)
        return found

    def started_between(
        self, start: datetime, end: datetime, *, obligation: str | None = None, page: int = 1000
    ) -> Iterator[ObligationClock]:
        for clock in self._in(start, end):
            if obligation in (None, clock.obligation):
                self.read += 1
                yield clock


def _report_of(*clocks: ObligationClock, now: datetime, subjects: int = 100) -> dict[str, Any]:
    window = report_window("2027-02-01", "2027-04-01", "America/New_York")
    report = compliance_report(window, _Rows(*clocks), OBLIGATIONS, now, subjects=subjects)
    return {entry["obligation"]: entry for entry in report_json(report)["obligations"]}


def test_the_report_counts_each_standing_with_its_reasons_and_subjects() -> None:
    met = _exchange_clock(1, done_at=MONDAY + timedelta(hours=1))
    held = _exchange_clock(2, reason="maintenance")
    late = _exchange_clock(3, done_at=MONDAY + timedelta(days=8), reason="partner-unavailable")
    outside = _exchange_clock(4, started_at=MONDAY - timedelta(days=40))
    window = report_window("2027-02-01", "2027-04-01", "America/New_York")
    now = MONDAY + timedelta(days=10)
    rows = _Rows(met, held, late, outside)
    report = compliance_report(window, rows, OBLIGATIONS, now)
    shown = {entry["obligation"]: entry for entry in report_json(report)["obligations"]}
    request = shown[REQUEST_AFTER_ENROLMENT]
    assert request["counts"] == {
        "met": 1,
        "missed": 2,
        "at_risk": 0,
        "pending": 0,
        "closed": 0,
        "not_started": 0,
    }
    assert request["missed"]["reasons"] == {"maintenance": 1, "partner-unavailable": 1}
    assert [s["subject_id"] for s in request["missed"]["subjects"]] == ["ex-2", "ex-3"]
    assert request["met"]["subjects"][0]["reason"] is None
    assert not request["met"]["truncated"] and not request["missed"]["truncated"]
    assert shown[ANSWER_WITHIN]["counts"]["met"] == 0  # listed though it has no rows
    lines = list(csv.DictReader(io.StringIO("".join(report_csv(window, rows, OBLIGATIONS, now)))))
    assert [(line["subject_id"], line["standing"]) for line in lines] == [
        ("ex-1", "met"),
        ("ex-2", "missed"),
        ("ex-3", "missed"),
    ]
    assert lines[1]["reason"] == "maintenance" and lines[1]["partner_id"] == "old-payer"
    table = report_table(report)
    assert "missed   exchange ex-2 partner old-payer: maintenance" in table


def test_the_met_subjects_are_listed_up_to_the_limit_and_the_others_in_full() -> None:
    met = [_exchange_clock(n, done_at=MONDAY) for n in range(5)]
    pending = [_exchange_clock(n) for n in range(10, 17)]
    now = MONDAY + timedelta(days=1)
    request = _report_of(*met, *pending, now=now, subjects=3)[REQUEST_AFTER_ENROLMENT]
    assert request["counts"]["met"] == 5 and request["met"]["truncated"] is True
    assert [s["subject_id"] for s in request["met"]["subjects"]] == ["ex-0", "ex-1", "ex-2"]
    assert len(request["pending"]["subjects"]) == 7 and request["pending"]["truncated"] is False
    none = _report_of(*met, now=now, subjects=0)[REQUEST_AFTER_ENROLMENT]
    assert none["met"]["subjects"] == [] and none["met"]["truncated"] is True


def test_reasons_are_counted_per_standing_the_row_code_first() -> None:
    now = MONDAY + timedelta(days=6)  # a week's row at risk: within two days of its due
    rows = [
        _exchange_clock(1, done_at=MONDAY + timedelta(days=8)),  # late, no code
        _exchange_clock(2, started_at=MONDAY - timedelta(days=9), due_at=MONDAY),  # overdue
        _exchange_clock(3),  # at risk
        _exchange_clock(4, reason="rate-limited"),  # at risk, held by the partner's rate
        _exchange_clock(5, done_at=MONDAY, reason="maintenance"),  # met: no reason shown
    ]
    request = _report_of(*rows, now=now)[REQUEST_AFTER_ENROLMENT]
    assert request["missed"]["reasons"] == {"late": 1, "not-done": 1}
    assert request["at_risk"]["reasons"] == {"not-done": 1, "rate-limited": 1}
    assert request["met"]["reasons"] == {}


def test_the_csv_is_written_a_page_at_a_time_as_it_is_read() -> None:
    rows = _Rows(*(_exchange_clock(n, done_at=MONDAY) for n in range(25)))
    window = report_window("2027-02-01", "2027-04-01", "America/New_York")
    chunks = report_csv(window, rows, OBLIGATIONS, MONDAY + timedelta(days=1), page=10)
    assert rows.read == 0  # counted, nothing listed yet
    assert next(chunks).count("\n") == 11 and rows.read <= 11  # the header and one page
    rest = list(chunks)
    assert [chunk.count("\n") for chunk in rest] == [10, 5] and rows.read == 25


@pytest.mark.parametrize("given", ["-1", "ten", "1.5", "10001", "", "٣"])
def test_a_subjects_limit_that_cannot_be_used_names_the_parameter(given: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        subjects_limit(given)
    assert raised.value.issues[0].expression == "_subjects"
    assert "'_subjects' must be a whole number from 0 to 10000" in raised.value.text


def test_a_subjects_limit_defaults_to_a_hundred() -> None:
    assert (subjects_limit(None), subjects_limit("0"), subjects_limit("10000")) == (100, 0, 10000)


@given(
    standing=st.sampled_from(list(Standing)),
    code=st.sampled_from([None, "", "maintenance"]),
    is_done=st.booleans(),
)
def test_the_reason_shown_is_the_rows_code_else_what_its_standing_says(
    standing: Standing, code: str | None, is_done: bool
) -> None:
    reason = reason_of(standing, code, is_done=is_done)
    if standing is Standing.MET:
        assert reason is None
    elif code:
        assert reason == code
    else:
        assert reason == {
            Standing.MISSED: "late" if is_done else "not-done",
            Standing.AT_RISK: "not-done",
        }.get(standing)
