"""Standing pulls on the in-memory ports, with a clock the test moves: a first request
started once coverage has begun and the member opted in, then pulls each period of the
obligations file asks for, each an exchange asked ``since`` the last successful pull and
keeping the period's obligation row, the opt-in decided again at each run (issue 54,
ADR 0040)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from payerbridge.api.schemas import ExchangeCreate
from payerbridge.compliance.calendar import BusinessCalendar
from payerbridge.compliance.clocks import Clocks, ObligationClock, Subject, SubjectType
from payerbridge.compliance.model import Standing
from payerbridge.compliance.obligations import (
    ASKING,
    QUARTERLY,
    REQUEST_AFTER_ENROLMENT,
    RUN_OFF,
    shipped_obligations,
)
from payerbridge.consent.model import ConsentRole
from payerbridge.errors import Conflict, ConsentDenied, InvalidInput
from payerbridge.exchange.intake.submission import ExchangeSubmission
from payerbridge.exchange.model import ExchangeState
from payerbridge.exchange.operations.interventions import revoke_and_stop
from payerbridge.exchange.pulls.model import LEAD, RETRY_AFTER
from payerbridge.exchange.pulls.schedules import (
    cancel_pull,
    end_coverage,
    schedule_first_pull,
    schedule_pull,
    start_due_pulls,
)
from payerbridge.exchange.steps.machine import proceed
from payerbridge.transactions import UnitOfWork
from tests.builders import a_patient, a_submitted_exchange, an_exchange_request, unit_with
from tests.fakes import FakeClock, InMemoryAuditLog
from tests.unit.exchange.test_service import _bundle, _client, _parse, _ports

OBLIGATIONS = shipped_obligations(BusinessCalendar("America/New_York", frozenset({5, 6})))
QUARTER_WARNING = timedelta(days=14) + LEAD  # the shipped file's warning, and our lead


class InMemoryClockLedger:
    """The ``ClockLedger`` port in memory: one row per subject and obligation."""

    def __init__(self) -> None:
        self.rows: dict[tuple[Subject, str], ObligationClock] = {}
        self.exchanges: Any = None  # to tell the exchanges under a consent

    def close(self, unit: UnitOfWork, subject: Subject, reason: str, *, at: datetime) -> None:
        for key, row in self.rows.items():
            if key[0] == subject and row.done_at is None:
                closed = dataclasses.replace(row, done_at=at, standing=Standing.CLOSED)
                self.rows[key] = dataclasses.replace(closed, reason=reason)

    def close_under_consent(
        self, unit: UnitOfWork, consent_id: str, reason: str, *, at: datetime
    ) -> None:
        for subject in {s for s, _ in self.rows if s.type is SubjectType.EXCHANGE}:
            if self.exchanges.current(subject.id).consent_id == consent_id:
                self.close(unit, subject, reason, at=at)

    def start(self, unit: UnitOfWork, clock: ObligationClock) -> None:
        self.rows.setdefault((clock.subject, clock.obligation), clock)

    def start_after(self, unit: UnitOfWork, clock: ObligationClock) -> None:
        partners = [r.partner_id for r in self.rows.values() if r.subject == clock.subject]
        self.start(unit, dataclasses.replace(clock, partner_id=next(iter(partners), None)))

    def settle(
        self, unit: UnitOfWork, obligation: str, subject: Subject, *, done_at: datetime
    ) -> None:
        row = self.rows.get((subject, obligation))
        if row is not None and row.done_at is None:
            late = row.due_at is not None and done_at > row.due_at
            standing = Standing.MISSED if late else Standing.MET
            self.rows[(subject, obligation)] = dataclasses.replace(
                row, done_at=done_at, standing=standing
            )

    def settle_asked(self, unit: UnitOfWork, subject: Subject, *, done_at: datetime) -> None:
        for obligation in ASKING:
            self.settle(unit, obligation, subject, done_at=done_at)

    def hand_over(self, unit: UnitOfWork, source: Subject, target: Subject) -> None:
        for (subject, obligation), row in list(self.rows.items()):
            if subject == source and row.done_at is None:
                del self.rows[(subject, obligation)]
                self.rows[(target, obligation)] = dataclasses.replace(row, subject=target)

    def note(self, unit: UnitOfWork, subject: Subject, reason: str, *, at: datetime) -> None:
        for key, row in self.rows.items():
            if key[0] == subject and row.done_at is None:
                self.rows[key] = dataclasses.replace(row, reason=reason)

    def of(self, subject_id: str) -> dict[str, ObligationClock]:
        return {o: row for (s, o), row in self.rows.items() if s.id == subject_id}


def _with_clocks(ports: Any, clock: FakeClock) -> tuple[Any, InMemoryClockLedger]:
    ledger = InMemoryClockLedger()
    ledger.exchanges = ports.exchanges
    ports.wiring.transactions.clock = clock
    return unit_with(ports, clocks=Clocks(OBLIGATIONS, ledger)), ledger


def _a_moved_member() -> tuple[Any, Any, FakeClock, str, InMemoryClockLedger]:
    clock = FakeClock()
    client = _client()
    patient = {**a_patient(), "meta": {"lastUpdated": "2026-01-01T00:00:00Z"}}
    client.bundle = _bundle(patient)
    ports, ledger = _with_clocks(_ports(client, clock), clock)
    exchange_id = _submit(ports, an_exchange_request())
    assert proceed(ports, exchange_id, _parse).state is ExchangeState.COMPLETED
    return ports, client, clock, exchange_id, ledger


def _submit(ports: Any, raw: dict[str, Any]) -> str:
    return a_submitted_exchange(ports, raw, client_id="newplan")


def test_a_first_request_waits_for_coverage_then_goes_in_its_week_and_pulls_go_on() -> None:
    clock = FakeClock(datetime(2026, 11, 22, 9, tzinfo=UTC))
    client = _client()
    client.bundle = _bundle({**a_patient(), "meta": {"lastUpdated": "2026-01-01T00:00:00Z"}})
    ports, ledger = _with_clocks(_ports(client, clock), clock)
    raw = ExchangeCreate.model_validate(an_exchange_request()).model_dump(
        mode="json", exclude_none=True
    )  # coverage starts 2026-12-01
    schedule = schedule_first_pull(
        ports,
        ExchangeSubmission(_parse(raw), raw, client_id="newplan", idempotency_key=None),
        actor="newplan",
    )
    starts = datetime(2026, 12, 1, 5, tzinfo=UTC)  # midnight in New York
    assert (schedule.kind.value, schedule.next_due_at) == ("first", starts)
    assert "consent" not in ports.wiring.pulls.requests[schedule.id]  # type: ignore[operator]
    row = ledger.of(f"{schedule.id}/1")[REQUEST_AFTER_ENROLMENT]
    assert (row.started_at, row.due_at) == (starts, starts + timedelta(days=7))

    assert start_due_pulls(ports, starts - timedelta(seconds=1)).started == ()
    clock.now = starts + timedelta(days=2)
    (first,) = start_due_pulls(ports, clock.now).started
    assert ports.exchanges.current(first).since is None  # the whole record
    assert ledger.of(f"{schedule.id}/1") == {}  # the exchange took the period's row
    assert proceed(ports, first, _parse).state is ExchangeState.COMPLETED
    assert ledger.of(first)[REQUEST_AFTER_ENROLMENT].standing is Standing.MET
    received = clock.now

    clock.advance(RETRY_AFTER.total_seconds())  # looked at: the quarter starts from it
    run = start_due_pulls(ports, clock.now)
    assert (run.started, run.waiting) == ((), 0)
    moved = ports.wiring.pulls.get(schedule.id)
    quarter = ledger.of(f"{schedule.id}/2")[QUARTERLY]
    assert moved.kind.value == "quarterly" and moved.last_received_at == received
    assert quarter.started_at == starts + timedelta(days=2)
    assert quarter.due_at == datetime(2027, 3, 3, 5, tzinfo=UTC)  # three months after
    assert moved.next_due_at == quarter.due_at - QUARTER_WARNING

    clock.now = quarter.due_at - QUARTER_WARNING
    (second,) = start_due_pulls(ports, clock.now).started
    assert ports.exchanges.current(second).since == received
    assert proceed(ports, second, _parse).state is ExchangeState.COMPLETED
    assert ledger.of(second)[QUARTERLY].standing is Standing.MET


def test_a_pull_that_got_no_answer_is_tried_again_with_its_row_and_no_member_stops_it() -> None:
    ports, client, clock, first, ledger = _a_moved_member()
    schedule = schedule_pull(ports, first, actor="ops")
    clock.now = schedule.next_due_at  # type: ignore[assignment]
    (pull,) = start_due_pulls(ports, clock.now).started
    # The pull ran out of its budget without an answer.
    record = ports.exchanges.current(pull)
    ports.exchanges.records[pull] = dataclasses.replace(
        record, state=ExchangeState.FAILED, error_code="partner-unavailable"
    )
    clock.advance(RETRY_AFTER.total_seconds() - 60)
    assert start_due_pulls(ports, clock.now).started == ()
    clock.advance(60)
    (again,) = start_due_pulls(ports, clock.now).started
    assert ledger.of(pull) == {} and QUARTERLY in ledger.of(again)  # the row went along
    assert ports.wiring.pulls.get(schedule.id).pulls == 2

    record = ports.exchanges.current(again)
    ports.exchanges.records[again] = dataclasses.replace(
        record, state=ExchangeState.FAILED, error_code="no-match"
    )
    clock.advance(RETRY_AFTER.total_seconds())
    run = start_due_pulls(ports, clock.now)
    assert run.stopped == ((schedule.id, "no-match"),)


def test_run_off_follows_coverage_end_and_nothing_is_owed_past_the_opt_in() -> None:
    ports, _, clock, first, ledger = _a_moved_member()
    ended = clock.now + timedelta(days=30)  # within the quarter: run-off from its end
    schedule = schedule_pull(ports, first, actor="ops", coverage_end=ended)
    row = ledger.of(f"{schedule.id}/1")[RUN_OFF]
    assert schedule.kind.value == "run-off" and row.started_at == ended
    assert schedule.next_due_at == row.due_at - QUARTER_WARNING  # type: ignore[operator]

    # An opt-in that ends before the period would: no row, the schedule waits for its end.
    record = ports.exchanges.current(first)
    stored = ports.consents.get(record.consent_id or "")
    short = dataclasses.replace(
        stored.record,
        period_end=ended + timedelta(days=10),  # type: ignore[union-attr]
    )
    ports.consents.consents[record.consent_id] = dataclasses.replace(stored, record=short)  # type: ignore[attr-defined, arg-type]
    other = schedule_pull(ports, first, actor="ops", coverage_end=ended)
    assert ledger.of(f"{other.id}/1") == {} and other.next_due_at == short.period_end
    clock.now = short.period_end + timedelta(seconds=1)
    run = start_due_pulls(ports, clock.now)
    assert (other.id, "expired") in run.stopped


def test_a_pull_still_running_waits_and_a_revoked_opt_in_stops_the_schedule() -> None:
    ports, _, clock, first, ledger = _a_moved_member()
    schedule = schedule_pull(ports, first, actor="ops", coverage_end=clock.now)
    clock.now = schedule.next_due_at  # type: ignore[assignment]
    (pull,) = start_due_pulls(ports, clock.now).started
    clock.advance(RETRY_AFTER.total_seconds())
    run = start_due_pulls(ports, clock.now)  # the pull has not run yet
    assert (run.started, run.waiting) == ((), 1)
    # A run cut off after submitting, before its schedule moved on, submits nothing new
    # when run again: the pull's Idempotency-Key finds the exchange it submitted.
    moved = ports.wiring.pulls.rows[schedule.id]
    ports.wiring.pulls.rows[schedule.id] = dataclasses.replace(moved, pulls=0, awaiting_pull=False)
    assert start_due_pulls(ports, clock.now).started == (pull,)

    assert {row.standing for row in ledger.of(pull).values()} == {Standing.PENDING}
    revoke_and_stop(ports, schedule.consent_id, by="member", request_id=None)
    assert ports.exchanges.current(pull).state is ExchangeState.BLOCKED
    # The period it ran for is no longer owed: closed, not left to read missed.
    closed = ledger.of(pull).values()
    assert {(row.standing, row.reason) for row in closed} == {(Standing.CLOSED, "opt-in-revoked")}
    clock.advance(RETRY_AFTER.total_seconds())
    run = start_due_pulls(ports, clock.now)
    assert run.stopped == ((schedule.id, "revoked"),)  # the pull was blocked so
    stopped = ports.wiring.pulls.get(schedule.id)
    assert (stopped.status.value, stopped.next_due_at) == ("stopped", None)
    assert ports.wiring.pulls.request(schedule.id) is None  # no demographics kept once stopped
    audit: InMemoryAuditLog = ports.audit  # type: ignore[assignment]
    actions = [e.action for e in audit.events]
    assert actions.count("pull.started") == 2 and "pull.scheduled" in actions
    # The opt-in's decision that let the schedule be made is kept with it.
    assert actions[actions.index("pull.scheduled") - 1] == "consent.decision"


def test_a_schedule_without_a_current_opt_in_is_refused_with_the_reason() -> None:
    ports, _, clock, first, _ = _a_moved_member()
    record = ports.exchanges.current(first)
    revoke_and_stop(ports, record.consent_id or "", by="member", request_id=None)
    with pytest.raises(ConsentDenied) as refused:
        schedule_pull(ports, first, actor="ops")
    assert refused.value.reason == "revoked" and ports.wiring.pulls.rows == {}
    raw = {k: v for k, v in an_exchange_request().items() if k != "consent"}
    raw["consent_id"] = record.consent_id
    with pytest.raises(ConsentDenied, match="no current opt-in"):
        schedule_first_pull(
            ports,
            ExchangeSubmission(_parse(raw), raw, client_id="newplan", idempotency_key=None),
            actor="newplan",
        )
    # An opt-in of this member that an exchange could not use is refused as it would be:
    # none under that id, one naming another old payer, a consent presented to us.
    opted_in = ports.consents.get(record.consent_id or "")
    assert opted_in is not None
    other_payer = dataclasses.replace(
        opted_in,
        record=dataclasses.replace(opted_in.record, consent_id="other-payer"),
        partner_id="another-plan",
    )
    presented = dataclasses.replace(
        opted_in,
        record=dataclasses.replace(opted_in.record, consent_id="presented"),
        role=ConsentRole.DISCLOSE,
    )
    ports.consents.consents.update({"other-payer": other_payer, "presented": presented})
    for consent_id, problem in (
        ("no-such-opt-in", "no member opt-in is recorded"),
        ("other-payer", "names another old payer"),
        ("presented", "no member opt-in is recorded"),
    ):
        raw["consent_id"] = consent_id
        with pytest.raises(InvalidInput, match=problem):
            schedule_first_pull(
                ports,
                ExchangeSubmission(_parse(raw), raw, client_id="newplan", idempotency_key=None),
                actor="newplan",
            )
    assert ports.wiring.pulls.rows == {}


def test_a_cancelled_schedule_starts_nothing() -> None:
    ports, _, clock, first, _ = _a_moved_member()
    schedule = schedule_pull(ports, first, actor="ops", coverage_end=clock.now)
    cancelled = cancel_pull(ports, schedule.id, actor="ops")
    assert (cancelled.status.value, cancelled.stop_reason) == ("stopped", "cancelled")
    assert start_due_pulls(ports, clock.now + timedelta(days=400)).started == ()


def test_a_coverage_end_learned_later_turns_the_periods_after_the_owed_one_to_run_off() -> None:
    ports, client, clock, first, ledger = _a_moved_member()
    schedule = schedule_pull(ports, first, actor="ops")
    assert schedule.kind.value == "quarterly"
    ended = clock.now + timedelta(days=100)  # after the owed quarter, before the next
    updated = end_coverage(ports, schedule.id, ended, actor="ops")
    assert updated.coverage_end == ended and updated.kind.value == "quarterly"
    assert QUARTERLY in ledger.of(f"{schedule.id}/1")  # the period owed now stands

    clock.now = schedule.next_due_at  # type: ignore[assignment]
    (pull,) = start_due_pulls(ports, clock.now).started
    assert proceed(ports, pull, _parse).state is ExchangeState.COMPLETED
    clock.advance(RETRY_AFTER.total_seconds())
    start_due_pulls(ports, clock.now)
    moved = ports.wiring.pulls.get(schedule.id)
    run_off = ledger.of(f"{schedule.id}/2")[RUN_OFF]
    assert moved.kind.value == "run-off" and run_off.started_at == ended

    cancel_pull(ports, schedule.id, actor="ops")
    with pytest.raises(Conflict, match="stopped"):
        end_coverage(ports, schedule.id, ended, actor="ops")
    audit: InMemoryAuditLog = ports.audit  # type: ignore[assignment]
    assert "pull.updated" in [e.action for e in audit.events]
