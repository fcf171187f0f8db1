"""Obligation rows and the compliance report (pure): where a row stands at read time, the
report's window, its counts, reasons and subjects, and its JSON and CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.compliance.calendar import BusinessCalendar
from payerbridge.compliance.clocks import (
    ObligationClock,
    Subject,
    SubjectType,
    new_clock,
    standing_now,
)
from payerbridge.compliance.obligations import (
    ANSWER_WITHIN,
    REQUEST_AFTER_ENROLMENT,
    Standing,
    shipped_obligations,
)
from payerbridge.compliance.report import (
    compliance_report,
    report_csv,
    report_json,
    report_table,
    report_window,
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
    def __init__(self, *clocks: ObligationClock) -> None:
        self.clocks = clocks

    def started_between(self, start: datetime, end: datetime) -> list[ObligationClock]:
        return [c for c in self.clocks if start <= c.started_at < end]


def test_the_report_counts_each_standing_with_its_reasons_and_subjects() -> None:
    met = _exchange_clock(1, done_at=MONDAY + timedelta(hours=1))
    held = _exchange_clock(2, reason="maintenance")
    late = _exchange_clock(3, done_at=MONDAY + timedelta(days=8), reason="partner-unavailable")
    outside = _exchange_clock(4, started_at=MONDAY - timedelta(days=40))
    window = report_window("2027-02-01", "2027-04-01", "America/New_York")
    now = MONDAY + timedelta(days=10)
    report = compliance_report(window, _Rows(met, held, late, outside), OBLIGATIONS, now)
    shown = {entry["obligation"]: entry for entry in report_json(report)["obligations"]}
    request = shown[REQUEST_AFTER_ENROLMENT]
    assert request["counts"] == {
        "met": 1,
        "missed": 2,
        "at_risk": 0,
        "pending": 0,
        "not_started": 0,
    }
    assert request["missed"]["reasons"] == {"maintenance": 1, "partner-unavailable": 1}
    assert [s["subject_id"] for s in request["missed"]["subjects"]] == ["ex-2", "ex-3"]
    assert request["met"]["subjects"][0]["reason"] is None
    assert shown[ANSWER_WITHIN]["counts"]["met"] == 0  # listed though it has no rows
    lines = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert [(line["subject_id"], line["standing"]) for line in lines] == [
        ("ex-1", "met"),
        ("ex-2", "missed"),
        ("ex-3", "missed"),
    ]
    assert lines[1]["reason"] == "maintenance" and lines[1]["partner_id"] == "old-payer"
    table = report_table(report)
    assert "missed   exchange ex-2 partner old-payer: maintenance" in table
