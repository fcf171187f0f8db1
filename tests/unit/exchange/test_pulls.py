"""Standing pulls on the in-memory ports, with a clock the test moves: scheduled from a
successful exchange, started when due as exchanges asked ``since`` the last successful
pull, the opt-in decided again at each run (issue 54, ADR 0040)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from payerbridge.errors import ConsentDenied, InvalidInput
from payerbridge.exchange.interventions import revoke_and_stop
from payerbridge.exchange.model import ExchangeState
from payerbridge.exchange.pull_model import QUARTER, RUN_OFF_EVERY, PullKind, PullSchedule
from payerbridge.exchange.pulls import cancel_pull, schedule_pull, start_due_pulls
from payerbridge.exchange.steps import proceed
from payerbridge.transactions import UnitOfWork
from tests.builders import a_patient, an_exchange_request
from tests.fakes import FakeClock, InMemoryAuditLog
from tests.unit.exchange.test_service import _bundle, _client, _parse, _ports, _submit


class InMemoryPullSchedules:
    """The ``PullSchedules`` port in memory (the request kept beside, cut on stop)."""

    def __init__(self) -> None:
        self.rows: dict[str, PullSchedule] = {}
        self.requests: dict[str, dict[str, Any] | None] = {}

    def add(self, unit: UnitOfWork, schedule: PullSchedule, request: dict[str, Any]) -> None:
        self.rows[schedule.id], self.requests[schedule.id] = schedule, request

    def get(self, schedule_id: str) -> PullSchedule:
        return self.rows[schedule_id]

    def all(self, *, status: Any = None) -> list[PullSchedule]:
        return [s for s in self.rows.values() if status is None or s.status is status]

    def due(self, now: datetime) -> list[PullSchedule]:
        return [
            s
            for s in self.rows.values()
            if s.status.value == "active" and s.next_due_at is not None and s.next_due_at <= now
        ]

    def request(self, schedule_id: str) -> dict[str, Any] | None:
        return self.requests.get(schedule_id)

    def update(self, unit: UnitOfWork, schedule_id: str, **values: Any) -> None:
        if values.get("status") == "stopped":
            self.requests[schedule_id] = None
        fields = {**values}
        if "status" in fields:
            fields["status"] = type(self.rows[schedule_id].status)(fields["status"])
        self.rows[schedule_id] = dataclasses.replace(self.rows[schedule_id], **fields)


def _a_moved_member() -> tuple[Any, Any, FakeClock, str]:
    clock = FakeClock()
    client = _client()
    patient = {**a_patient(), "meta": {"lastUpdated": "2026-01-01T00:00:00Z"}}
    client.bundle = _bundle(patient)
    ports = _ports(client, clock)
    exchange_id = _submit(ports, an_exchange_request())
    assert proceed(ports, exchange_id, _parse).state is ExchangeState.COMPLETED
    return ports, client, clock, exchange_id


def test_a_quarterly_pull_starts_when_due_asking_since_the_last_successful_one() -> None:
    ports, client, clock, first = _a_moved_member()
    received = clock.now
    schedules = InMemoryPullSchedules()
    schedule = schedule_pull(ports, schedules, first, PullKind.QUARTERLY, actor="ops")
    assert schedule.next_due_at == received + QUARTER
    assert "member" in schedules.requests[schedule.id]  # type: ignore[operator]
    assert "consent" not in schedules.requests[schedule.id]  # type: ignore[operator]

    clock.advance(QUARTER.total_seconds() - 60)
    assert start_due_pulls(ports, schedules, clock.now).started == ()  # not due yet
    clock.advance(60)
    (pull,) = start_due_pulls(ports, schedules, clock.now).started
    record = ports.exchanges.current(pull)
    assert record.since == received and record.consent_id == schedule.consent_id
    assert schedules.get(schedule.id).next_due_at == clock.now + QUARTER
    assert start_due_pulls(ports, schedules, clock.now).started == ()  # due in a quarter
    # A run cut off after submitting, before its schedule moved on, submits nothing new
    # when run again: the pull's Idempotency-Key finds the exchange it submitted.
    moved = schedules.rows[schedule.id]
    schedules.rows[schedule.id] = dataclasses.replace(
        moved, pulls=0, next_due_at=clock.now, last_exchange_id=first
    )
    assert start_due_pulls(ports, schedules, clock.now).started == (pull,)
    schedules.rows[schedule.id] = moved

    assert proceed(ports, pull, _parse).state is ExchangeState.COMPLETED
    assert ports.exchanges.current(pull).error_code == "nothing-new"
    pulled_at = clock.now
    clock.advance(QUARTER.total_seconds())
    (second,) = start_due_pulls(ports, schedules, clock.now).started
    assert ports.exchanges.current(second).since == pulled_at  # the last successful pull
    audit: InMemoryAuditLog = ports.audit  # type: ignore[assignment]
    actions = [e.action for e in audit.events]
    assert actions.count("pull.started") == 3 and "pull.scheduled" in actions  # one run twice


def test_a_pull_still_running_waits_and_a_revoked_opt_in_stops_the_schedule() -> None:
    ports, _, clock, first = _a_moved_member()
    schedules = InMemoryPullSchedules()
    ended = clock.now - timedelta(days=1)
    schedule = schedule_pull(
        ports, schedules, first, PullKind.RUN_OFF, actor="ops", coverage_end=ended
    )
    assert schedule.next_due_at == clock.now  # coverage ended already: due at once
    (pull,) = start_due_pulls(ports, schedules, clock.now).started
    assert schedules.get(schedule.id).next_due_at == clock.now + RUN_OFF_EVERY
    clock.advance(RUN_OFF_EVERY.total_seconds())
    run = start_due_pulls(ports, schedules, clock.now)  # the pull has not run yet
    assert (run.started, run.waiting) == ((), 1)

    revoke_and_stop(ports, schedule.consent_id, by="member", request_id=None)
    run = start_due_pulls(ports, schedules, clock.now)
    assert run.stopped == ((schedule.id, "revoked"),)
    stopped = schedules.get(schedule.id)
    assert (stopped.status.value, stopped.stop_reason, stopped.next_due_at) == (
        "stopped",
        "revoked",
        None,
    )
    assert schedules.request(schedule.id) is None  # no demographics kept once stopped
    assert ports.exchanges.current(pull).state is ExchangeState.BLOCKED


def test_a_schedule_without_a_current_opt_in_is_refused_with_the_reason() -> None:
    ports, _, clock, first = _a_moved_member()
    schedules = InMemoryPullSchedules()
    record = ports.exchanges.current(first)
    revoke_and_stop(ports, record.consent_id or "", by="member", request_id=None)
    with pytest.raises(ConsentDenied) as refused:
        schedule_pull(ports, schedules, first, PullKind.QUARTERLY, actor="ops")
    assert refused.value.reason == "revoked" and schedules.rows == {}
    with pytest.raises(InvalidInput, match="cannot be scheduled") as invalid:
        schedule_pull(ports, schedules, first, PullKind.RUN_OFF, actor="ops")
    assert [i.expression for i in invalid.value.issues] == ["coverage_end"]


def test_a_cancelled_schedule_starts_nothing() -> None:
    ports, _, clock, first = _a_moved_member()
    schedules = InMemoryPullSchedules()
    schedule = schedule_pull(
        ports, schedules, first, PullKind.RUN_OFF, actor="ops", coverage_end=clock.now
    )
    cancelled = cancel_pull(ports, schedules, schedule.id, actor="ops")
    assert (cancelled.status.value, cancelled.stop_reason) == ("stopped", "cancelled")
    assert start_due_pulls(ports, schedules, clock.now + QUARTER).started == ()
