"""Where a row stands, decided in SQL (``store.clock_standing``), is the pure rule's
(``compliance.clocks.standing_now``) on a real database, SQLite and PostgreSQL: for
generated rows and instants, at and around each boundary (done at its due time, now at
its due time, now at the start of its obligation's warning), for obligations with a
warning, without one and no longer in the file; and the report's queries search the
window by index."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, event

from payerbridge.bootstrap import Platform, build_platform
from payerbridge.compliance.calendar import BusinessCalendar
from payerbridge.compliance.clocks import ObligationClock, Subject, SubjectType, standing_now
from payerbridge.compliance.model import Standing, StandingQuery
from payerbridge.compliance.obligations import (
    ANSWER_WITHIN,
    QUARTERLY,
    REQUEST_AFTER_ENROLMENT,
    RUN_OFF,
    ObligationSet,
    load_obligations,
)
from payerbridge.compliance.report import compliance_report, report_csv, report_window
from payerbridge.config import load_settings
from payerbridge.store.obligation_clocks import SqlObligationClocks
from payerbridge.store.tables import obligation_clocks
from tests.conftest import BACKEND


def _obligations() -> ObligationSet:
    """The shipped file, with run-off's periods never at risk (a repeat may have no
    warning)."""
    text = files("payerbridge.compliance").joinpath("data/obligations.json").read_text()
    raw = json.loads(text)
    for obligation in raw["obligations"]:
        if obligation["id"] == RUN_OFF:
            del obligation["repeats"]["at_risk_before"]
    calendar = BusinessCalendar("America/New_York", frozenset({5, 6}))
    return load_obligations(json.dumps(raw), calendar)


OBLIGATIONS = _obligations()
RISK = OBLIGATIONS.risk_windows()
# Warned two days, eight hours, fourteen days, never; a window (no clock); one no longer
# in the file.
NAMES = [REQUEST_AFTER_ENROLMENT, ANSWER_WITHIN, QUARTERLY, RUN_OFF, "five-year-window", "retired"]
TICK = timedelta(microseconds=1)
# Due times around now: at it, at each warning's start, a tick either side of each.
EDGES = [
    edge + tick
    for edge in (timedelta(0), *(span for span in RISK.values()))
    for tick in (-TICK, timedelta(0), TICK)
]
_offsets = st.one_of(
    st.sampled_from(EDGES),
    st.timedeltas(min_value=timedelta(days=-40), max_value=timedelta(days=40)),
)
_done = st.one_of(
    st.none(),
    st.sampled_from([-TICK, timedelta(0), TICK]),
    st.timedeltas(min_value=timedelta(days=-10), max_value=timedelta(days=10)),
)
_rows = st.lists(
    st.tuples(
        st.sampled_from(NAMES),
        st.one_of(st.none(), _offsets),
        _done,
        st.booleans(),
        st.booleans(),  # closed (an opt-in revoked, a member gone): kept closed
        st.sampled_from(list(SubjectType)),
    ),
    min_size=1,
    max_size=12,
)
_now = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory,
    module_database_env: Callable[[], dict[str, str]],
) -> Iterator[Platform]:
    env = module_database_env()
    data_dir = tmp_path_factory.mktemp("standing")
    platform = build_platform(
        load_settings(data_dir=data_dir, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))
    )
    yield platform
    platform.close()


Row = tuple[str, timedelta | None, timedelta | None, bool, bool, SubjectType]


def _clock(n: int, row: Row, now: datetime) -> ObligationClock:
    name, due_in, done_after, has_reason, closed, subject = row
    due = None if due_in is None else now + due_in
    done = None if done_after is None else (due or now) + done_after
    if closed:
        done = done or now
    return ObligationClock(
        id=f"row-{n:03}",
        obligation=name,
        obligation_version="v",
        subject=Subject(subject, f"ex-{n}"),
        partner_id=None,
        started_at=now - timedelta(days=50),
        due_at=due,
        done_at=done,
        # As stored, never trusted, but for closed: a row no longer owed stays so.
        standing=Standing.CLOSED if closed else Standing.PENDING,
        reason="opt-in-revoked" if closed else "maintenance" if has_reason else None,
        updated_at=now,
    )


def _insert(platform: Platform, clocks: list[ObligationClock]) -> None:
    with platform.engine.begin() as connection:
        connection.execute(delete(obligation_clocks))
        connection.execute(obligation_clocks.insert(), [_values(clock) for clock in clocks])


def _values(clock: ObligationClock) -> dict[str, Any]:
    return {
        "id": clock.id,
        "obligation": clock.obligation,
        "obligation_version": clock.obligation_version,
        "subject_type": clock.subject.type.value,
        "subject_id": clock.subject.id,
        "partner_id": clock.partner_id,
        "started_at": clock.started_at,
        "due_at": clock.due_at,
        "done_at": clock.done_at,
        "standing": clock.standing.value,
        "reason": clock.reason,
        "updated_at": clock.updated_at,
    }


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(now=_now, rows=_rows)
def test_the_sql_standing_is_the_pure_rules(
    platform: Platform,
    now: datetime,
    rows: list[Row],
) -> None:
    clocks = [_clock(n, row, now) for n, row in enumerate(rows)]
    _insert(platform, clocks)
    reader = SqlObligationClocks(platform.reader)
    span = (now - timedelta(days=60), now)
    pure = {clock.id: standing_now(OBLIGATIONS, clock, now).standing for clock in clocks}
    for standing in Standing:
        found = reader.standing_rows(StandingQuery(*span, now, RISK, [standing]))
        assert {clock.id for clock in found} == {k for k, v in pure.items() if v is standing}
    expected = Counter(
        (
            clock.obligation,
            clock.subject.type,
            pure[clock.id],
            clock.reason,
            clock.done_at is not None,
        )
        for clock in clocks
    )
    assert reader.tally(*span, now=now, risk=RISK) == dict(expected)


def test_the_reports_queries_search_the_window_by_index(platform: Platform, tmp_path: Path) -> None:
    if BACKEND != "sqlite":
        pytest.skip("the query plans checked are SQLite's")
    statements: list[tuple[str, Any]] = []

    def keep(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    window = report_window("2027-01-01", "2027-12-31", OBLIGATIONS.calendar.zone)
    now = datetime(2027, 6, 1, tzinfo=UTC)
    reader = SqlObligationClocks(platform.reader, obligations=OBLIGATIONS)
    event.listen(platform.reader, "before_cursor_execute", keep)
    try:
        compliance_report(window, reader, OBLIGATIONS, now)
        list(report_csv(window, reader, OBLIGATIONS, now))
        list(reader.started_between(window.start, window.end, page=1))
    finally:
        event.remove(platform.reader, "before_cursor_execute", keep)
    plans = []
    with platform.reader.connect() as connection:
        for statement, parameters in statements:
            if statement.startswith("SELECT"):
                plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                plans.append(" / ".join(row[3] for row in plan))
    assert plans and all("USING INDEX ix_" in plan for plan in plans), plans
    assert not any("SCAN" in plan for plan in plans), plans
