"""The obligations file: what each shipped clock says, how a deadline is assessed, and a
file that cannot be used refused with the field at fault."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta
from importlib.resources import files
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payerbridge.compliance.calendar import BusinessCalendar
from payerbridge.compliance.model import Standing
from payerbridge.compliance.obligations import (
    ANSWER_WITHIN,
    REQUEST_AFTER_ENROLMENT,
    ObligationError,
    load_obligations,
    shipped_obligations,
)

CALENDAR = BusinessCalendar("America/New_York", frozenset({5, 6}), frozenset({date(2027, 1, 18)}))
OBLIGATIONS = shipped_obligations(CALENDAR)


def _shipped() -> dict[str, Any]:
    text = files("payerbridge.compliance").joinpath("data/obligations.json").read_text()
    document: dict[str, Any] = json.loads(text)
    return document


def test_the_shipped_file_cites_a_source_for_every_obligation() -> None:
    assert set(OBLIGATIONS.by_id) == {
        REQUEST_AFTER_ENROLMENT,
        ANSWER_WITHIN,
        "concurrent-coverage-quarterly",
        "run-off",
        "five-year-window",
    }
    assert all(o.source.citation for o in OBLIGATIONS.by_id.values())
    assert not OBLIGATIONS[ANSWER_WITHIN].source.confirmed  # the digest marks it uncertain


def test_a_request_is_due_a_week_after_the_later_of_coverage_and_opt_in() -> None:
    coverage = datetime(2027, 1, 1, tzinfo=UTC)
    opt_in = datetime(2027, 1, 4, 15, tzinfo=UTC)
    events = {"coverage_start": coverage, "opt_in": opt_in}
    assert OBLIGATIONS.due(REQUEST_AFTER_ENROLMENT, events) == opt_in + timedelta(days=7)
    waiting = OBLIGATIONS.assess(
        REQUEST_AFTER_ENROLMENT, {"coverage_start": coverage}, done_at=None, now=opt_in
    )
    assert waiting.standing is Standing.NOT_STARTED and "opt_in" in waiting.why


@given(
    received=st.integers(0, 60 * 24 * 30).map(
        lambda m: datetime(2027, 1, 10, tzinfo=UTC) + timedelta(minutes=m)
    ),
    after=st.integers(0, 60 * 24 * 10).map(lambda m: timedelta(minutes=m)),
    answered=st.booleans(),
)
def test_an_answer_is_met_in_time_missed_late_and_at_risk_only_near_its_deadline(
    received: datetime, after: timedelta, answered: bool
) -> None:
    events = {"request_received": received}
    now = received + after
    found = OBLIGATIONS.assess(ANSWER_WITHIN, events, done_at=now if answered else None, now=now)
    due = CALENDAR.deadline(received, 1)
    assert found.due_at == due
    if answered:
        assert found.standing is (Standing.MET if now <= due else Standing.MISSED)
    elif now > due:
        assert found.standing is Standing.MISSED
    elif due - now <= timedelta(hours=8):
        assert found.standing is Standing.AT_RISK
    else:
        assert found.standing is Standing.PENDING


def test_at_risk_across_a_weekend_and_a_holiday_only_on_the_day_it_is_due() -> None:
    friday = datetime(2027, 1, 15, 21, 0, tzinfo=UTC)  # 16:00 in New York
    events = {"request_received": friday}

    def standing(at: datetime) -> Standing:
        return OBLIGATIONS.assess(ANSWER_WITHIN, events, done_at=None, now=at).standing

    assert standing(datetime(2027, 1, 16, 20, tzinfo=UTC)) is Standing.PENDING  # Saturday
    assert standing(datetime(2027, 1, 18, 20, tzinfo=UTC)) is Standing.PENDING  # the holiday
    assert standing(datetime(2027, 1, 19, 22, tzinfo=UTC)) is Standing.AT_RISK  # Tue 17:00
    assert standing(datetime(2027, 1, 20, 5, 1, tzinfo=UTC)) is Standing.MISSED


def _changed(path: list[Any], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(_shipped())
    target = document
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["version"], _DELETE, "version"),
        (
            ["obligations", 1, "deadline", "within"],
            {"days": 1, "hours": 2},
            "obligations.1.deadline.within",
        ),
        (
            ["obligations", 1, "deadline", "within"],
            {"days": -1},
            "obligations.1.deadline.within.days",
        ),
        (
            ["obligations", 1, "deadline", "within"],
            {"days": "1"},
            "obligations.1.deadline.within.days",
        ),
        (
            ["obligations", 0, "deadline", "starts"],
            {"at": "moon_rise"},
            "obligations.0.deadline.starts",
        ),
        (
            ["obligations", 0, "deadline", "at_risk_before"],
            {"business_days": 1},
            "obligations.0.deadline",
        ),
        (["obligations", 2, "repeats", "while"], "sunshine", "obligations.2.repeats"),
        (["obligations", 3, "source", "citation"], _DELETE, "obligations.3.source.citation"),
        (["obligations", 4, "role"], "regulator", "obligations.4.role"),
        (["obligations", 4, "window"], _DELETE, "obligations.4"),
        (["obligations", 4, "shortcut"], True, "obligations.4.shortcut"),
        (["obligations", 4, "id"], "Five Years", "obligations.4.id"),
        (["obligations", 4, "id"], "run-off", "obligations.4.id"),
        (["obligations", 1, "id"], "answer-eventually", "obligations"),
    ],
)
def test_a_file_that_cannot_be_used_names_the_field(
    path: list[Any], value: Any, field: str
) -> None:
    with pytest.raises(ObligationError) as caught:
        load_obligations(json.dumps(_changed(path, value)), CALENDAR)
    assert caught.value.field == field, caught.value


def test_a_changed_limit_is_configuration_not_code() -> None:
    two_days = _changed(["obligations", 1, "deadline", "within"], {"business_days": 2})
    changed = load_obligations(json.dumps(two_days), CALENDAR)
    friday = datetime(2027, 1, 15, 21, tzinfo=UTC)
    assert changed.due(ANSWER_WITHIN, {"request_received": friday}) == CALENDAR.deadline(friday, 2)
