"""Refused calls counted in the database (ADR 0045): each refusal in exactly one window's
event, windows closed once however many closers run, a refusal whose window closed while
it ran counted in the next one, and the chain still verifying."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from payerbridge.audit.refusals import (
    REFUSALS_ACTION,
    Refusal,
    close_ended_windows,
    count_refusals,
)
from payerbridge.bootstrap import Platform
from payerbridge.store.refusal_tables import audit_refusal_windows
from payerbridge.store.tables import audit_events
from payerbridge.transactions import UnitOfWork

MINUTE = timedelta(minutes=1)
T0 = datetime(2026, 11, 27, 21, 0, tzinfo=UTC)


def _events(platform: Platform) -> list[dict[str, object]]:
    query = select(audit_events.c.actor, audit_events.c.detail).where(
        audit_events.c.action == REFUSALS_ACTION
    )
    with platform.engine.connect() as connection:
        rows = connection.execute(query.order_by(audit_events.c.seq)).all()
    return [{"actor": row.actor, **orjson.loads(row.detail)} for row in rows]


def _totals(platform: Platform) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = {}
    for event in _events(platform):
        key = (str(event["actor"]), str(event["reason"]))
        totals[key] = totals.get(key, 0) + int(str(event["count"]))
    return totals


@contextmanager
def _unit_at(platform: Platform, now: datetime) -> Iterator[UnitOfWork]:
    """A unit of work whose ``now`` is ``now`` (the stores read no clock: they take it)."""
    with platform.transactions.begin() as unit:
        unit.now = now  # type: ignore[misc]
        yield unit


def _close(platform: Platform, now: datetime) -> int:
    with _unit_at(platform, now) as unit:
        return close_ended_windows(platform.refusals, unit)


def test_refusals_become_one_event_per_client_reason_and_window(platform: Platform) -> None:
    refusals = [
        Refusal("client-a", "member-match", "no-match", T0 + timedelta(seconds=s))
        for s in (1, 2, 30, 59)
    ] + [
        Refusal("client-a", "member-match", "client-rate-limited", T0 + timedelta(seconds=5)),
        Refusal("client-b", "member-match", "no-match", T0 + timedelta(seconds=61)),
    ]
    with platform.transactions.begin() as unit:
        platform.refusals.count(unit, refusals, length=MINUTE)
    assert _close(platform, T0 + timedelta(seconds=59)) == 0  # nothing has ended
    assert _close(platform, T0 + MINUTE) == 2  # client-a's two reasons
    assert _close(platform, T0 + MINUTE) == 0  # closed once
    assert _close(platform, T0 + 2 * MINUTE) == 1
    events = _events(platform)
    assert sorted((e["actor"], e["reason"], e["count"]) for e in events[:2]) == [
        ("client-a", "client-rate-limited", 1),
        ("client-a", "no-match", 4),
    ]
    assert [(e["actor"], e["reason"], e["count"]) for e in events[2:]] == [
        ("client-b", "no-match", 1)
    ]
    first = events[0]
    assert first["window_start"] == T0.isoformat(timespec="microseconds")
    assert first["window_end"] == (T0 + MINUTE).isoformat(timespec="microseconds")
    assert set(first) == {
        "actor",
        "operation",
        "reason",
        "window_start",
        "window_end",
        "count",
    } | ({"trace_id"} & set(first))
    assert platform.audit_chain.head()[0] == len(events)


def test_a_refusal_whose_window_closed_meanwhile_counts_in_the_next(platform: Platform) -> None:
    late = Refusal("client-a", "member-match", "no-match", T0 + timedelta(seconds=59))
    with platform.transactions.begin() as unit:
        platform.refusals.count(unit, [late], length=MINUTE)
    assert _close(platform, T0 + MINUTE) == 1
    with platform.transactions.begin() as unit:  # began before the window ended
        platform.refusals.count(unit, [late], length=MINUTE)
    with platform.engine.connect() as connection:
        rows = connection.execute(
            select(
                audit_refusal_windows.c.window_start,
                audit_refusal_windows.c.count,
                audit_refusal_windows.c.closed_at,
            ).order_by(audit_refusal_windows.c.window_start)
        ).all()
    assert [(r.window_start, r.count, r.closed_at is None) for r in rows] == [
        (T0, 1, False),
        (T0 + MINUTE, 1, True),
    ]
    assert _close(platform, T0 + 2 * MINUTE) == 1
    assert _totals(platform) == {("client-a", "no-match"): 2}


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.sampled_from(["no-match", "card-guard"]),
            st.integers(0, 299),
        ),
        max_size=40,
    )
)
def test_every_refusal_is_in_exactly_one_event(
    platform: Platform, offsets: list[tuple[str, str, int]]
) -> None:
    """Refusals at any instants, counted and closed in any order (a close between any
    two counts): the events' counts add up to the refusals, by client and reason."""
    before = _totals(platform)
    base = T0 + timedelta(days=len(_events(platform)))  # each example in its own days
    for client, reason, second in offsets:
        at = base + timedelta(seconds=second)
        with _unit_at(platform, at) as unit:
            count_refusals(
                platform.refusals,
                unit,
                [Refusal(f"client-{client}", "member-match", reason, at)],
                length=MINUTE,
            )
    _close(platform, base + timedelta(hours=1))
    after = _totals(platform)
    added = {key: after[key] - before.get(key, 0) for key in after}
    expected: dict[tuple[str, str], int] = {}
    for client, reason, _ in offsets:
        key = (f"client-{client}", reason)
        expected[key] = expected.get(key, 0) + 1
    assert {k: v for k, v in added.items() if v} == expected


def test_concurrent_refusals_and_closers_lose_and_repeat_nothing(platform: Platform) -> None:
    """Four threads refusing and closing at once (on PostgreSQL, four transactions: the
    closers skip what another holds): every refusal in one event, no window twice."""
    start = T0 + timedelta(days=400)
    per_thread = 25

    def refuse(worker: int) -> None:
        for i in range(per_thread):
            at = start + timedelta(seconds=worker * 7 + i * 5)
            with _unit_at(platform, at + timedelta(seconds=90)) as unit:  # closes what ended
                count_refusals(
                    platform.refusals,
                    unit,
                    [Refusal("client-c", "member-match", "no-match", at)],
                    length=MINUTE,
                )

    threads = [threading.Thread(target=refuse, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _close(platform, start + timedelta(hours=2))
    events = [e for e in _events(platform) if e["actor"] == "client-c"]
    assert sum(int(str(e["count"])) for e in events) == 4 * per_thread
    windows = [e["window_start"] for e in events]
    assert len(windows) == len(set(windows))
    assert platform.audit_chain.head()[0] == len(_events(platform))


def test_the_audit_tick_closes_what_no_refusal_has(platform: Platform) -> None:
    """The upkeep's step (run after the checkpoints are signed) writes the events of the
    windows that ended with no refused call since to close them."""
    from payerbridge.wiring.workflows import _upkeep

    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    with _unit_at(platform, long_ago) as unit:
        platform.refusals.count(
            unit, [Refusal("client-t", "bulk-member-match", "card-guard", long_ago)], length=MINUTE
        )
    assert _upkeep(platform).close_refusal_windows() == 1
    assert _upkeep(platform).close_refusal_windows() == 0
    assert _totals(platform) == {("client-t", "card-guard"): 1}
