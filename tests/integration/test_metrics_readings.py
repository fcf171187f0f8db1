"""The shared state a scrape reads, on a real database (SQLite and PostgreSQL): exchanges
by state and reason, the review backlog by age, dead letters still waiting, breakers and
maintenance per partner, unfinished bulk jobs and onboardings, the audit chain's unsigned
tail, the standing pulls and those overdue, the exchanges waiting at a partner and why;
and the counters of business events move only
for units that commit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from payerbridge.audit.model import AuditEvent
from payerbridge.bootstrap import Platform, audit_checkpointer, build_platform
from payerbridge.config import load_settings
from payerbridge.exchange.calls.outbound import PARKED_FOR_BREAKER
from payerbridge.exchange.model import (
    Attempt,
    BreakerState,
    BreakerStatus,
    DeadLetter,
    ExchangeState,
    Move,
    NewExchange,
)
from payerbridge.exchange.moves import Advance, record_moves
from payerbridge.metrics.process import process_metrics
from payerbridge.routing.enrolment import StorePartner, store_partner
from payerbridge.routing.model import Partner
from payerbridge.routing.operations import MaintenanceWindow, Operations
from payerbridge.store.tables import (
    bulk_jobs,
    identity_decisions,
    identity_reviews,
    obligation_clocks,
    onboarding_chunks,
    onboardings,
    pull_schedules,
)
from payerbridge.types import ClientId, ExchangeId, PartnerId

S = ExchangeState


@pytest.fixture
def platform(tmp_path: Path, database_env: Callable[[], dict[str, str]]) -> Iterator[Platform]:
    env = database_env()
    platform = build_platform(
        load_settings(data_dir=tmp_path, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))
    )
    for partner_id in ("old", "away"):
        store_partner(
            StorePartner(
                Partner(
                    PartnerId(partner_id), partner_id, "1245319599", f"http://{partner_id}/fhir"
                ),
                "test",
            ),
            platform.units.partners(),
        )
    yield platform
    platform.close()


def exchange_in(platform: Platform, name: str, moves: list[Move], at: datetime) -> ExchangeId:
    exchange_id = ExchangeId(f"ex-{name}")
    with platform.transactions.begin() as unit:
        platform.exchanges.within(unit).create(
            NewExchange(
                exchange_id=exchange_id,
                partner_id=PartnerId("old"),
                client_id=ClientId("newplan"),
                request={},
                request_hash="h",
                at=at,
            )
        )
    with platform.units.exchange() as uow:
        record_moves(uow, Advance(exchange_id, moves, at, "test"))
    return exchange_id


def seed_exchanges(platform: Platform, now: datetime) -> None:
    exchange_in(platform, "done", [Move(S.VALIDATED), Move(S.FAILED, "no-match")], now)
    exchange_in(platform, "waiting", [Move(S.VALIDATED)], now)
    for name, replayed in (("dead", False), ("replayed", True)):
        stop = Move(S.DEAD_LETTERED, "attempts-exhausted", updates={"error_code": "x"})
        exchange_id = exchange_in(platform, name, [Move(S.VALIDATED), stop], now)
        letter = DeadLetter(
            exchange_id, "member-match", "attempts-exhausted", None, 3, {}, None, "h", None, now
        )
        with platform.units.exchange() as uow:
            uow.exchanges.file_dead_letter(letter)
            if replayed:
                replay = [Move(S.VALIDATED, "replay")]
                record_moves(uow, Advance(exchange_id, replay, now, "o"))


def seed_reviews(platform: Platform, now: datetime) -> None:
    ages = {"r-2h": 2, "r-30h": 30, "r-80h": 80, "r-done": 100}
    with platform.engine.begin() as connection:
        for case, hours in ages.items():
            opened = now - timedelta(hours=hours)
            connection.execute(
                identity_decisions.insert().values(
                    id=f"d-{case}",
                    outcome="review",
                    client_id="newplan",
                    request_key=case,
                    policy_version="single_exchange-x",
                    model_version="m",
                    decided_at=opened,
                    evidence="{}",
                )
            )
            connection.execute(
                identity_reviews.insert().values(
                    id=case,
                    decision_id=f"d-{case}",
                    status="accepted" if case == "r-done" else "open",
                    client_id="newplan",
                    request_key=case,
                    candidate_ids="[]",
                    opened_at=opened,
                    due_at=opened,
                )
            )


def seed_jobs(platform: Platform, now: datetime) -> None:
    job = {
        "client_id": "newplan",
        "requester_npi": "1234567893",
        "kind": "bulk-member-match",
        "pdex_version": "2.0",
        "request_url": "u",
        "request_body": "{}",
        "lines": 0,
        "created_at": now,
        "updated_at": now,
        "transaction_time": now,
    }
    onboarding = {"client_id": "newplan", "partner_id": "old", "created_at": now, "chunks": 2}
    with platform.engine.begin() as connection:
        connection.execute(
            bulk_jobs.insert(),
            [
                {**job, "id": "j-1", "status": "running", "total": 100, "done": 40},
                {**job, "id": "j-2", "status": "completed", "total": 50, "done": 50},
            ],
        )
        connection.execute(
            onboardings.insert(),
            [
                {**onboarding, "id": "o-1", "status": "running", "total": 30, "updated_at": now},
                {**onboarding, "id": "o-2", "status": "completed", "total": 9, "updated_at": now},
            ],
        )
        chunk = {"onboarding_id": "o-1", "updated_at": now}
        connection.execute(
            onboarding_chunks.insert(),
            [
                {**chunk, "number": 0, "first_member": 0, "size": 20, "stage": "done"},
                {**chunk, "number": 1, "first_member": 20, "size": 10, "stage": "await-export"},
            ],
        )


def seed_partners(platform: Platform, now: datetime) -> None:
    window = MaintenanceWindow(
        "upgrade", start=now - timedelta(hours=1), end=now + timedelta(hours=1)
    )
    with platform.transactions.begin() as unit:
        platform.partners.set_operations(unit, PartnerId("away"), Operations(maintenance=(window,)))
        platform.breakers.within(unit).lock("http://old/fhir", PartnerId("old"), at=now)
        opened = BreakerState(BreakerStatus.OPEN, 5, open_until=now + timedelta(seconds=30))
        platform.breakers.within(unit).save("http://old/fhir", PartnerId("old"), opened, at=now)


def test_a_snapshot_reads_the_shared_state_and_the_scrape_shows_it(platform: Platform) -> None:
    now = datetime.now(UTC)
    seed_exchanges(platform, now)
    seed_reviews(platform, now)
    seed_jobs(platform, now)
    seed_partners(platform, now)
    audit_checkpointer(platform, every_seconds=0)()  # everything so far is signed
    with platform.transactions.begin() as unit:
        unit.record(AuditEvent(unit.now, "test", "probe", "Test", "t-1", "success"))

    snapshot = platform.metrics.snapshot()

    assert snapshot.exchanges_by_state() == {"failed": 1, "validated": 2, "dead_lettered": 1}
    counts = {(row.state, row.reason_code): row.count for row in snapshot.readings.exchanges}
    assert counts[("dead_lettered", "x")] == 1
    reviews = snapshot.readings.reviews
    assert reviews.open == 3
    assert reviews.older_than == {3600: 3, 86400: 2, 259200: 1}
    assert 80 * 3600 - 60 < snapshot.review_oldest_age_seconds < 80 * 3600 + 60
    (letter,) = snapshot.readings.dead_letters  # the replayed one is not waiting
    assert (letter.step, letter.reason_code, letter.count) == (
        "member-match",
        "attempts-exhausted",
        1,
    )
    partners = {p.partner_id: (p.breaker, p.in_maintenance) for p in snapshot.partners}
    assert partners == {"old": ("open", False), "away": ("closed", True)}
    (job,) = snapshot.readings.bulk_jobs
    assert (job.kind, job.status, job.jobs, job.members, job.done) == (
        "bulk-member-match",
        "running",
        1,
        100,
        40,
    )
    onboarding = snapshot.readings.onboardings
    assert (onboarding.running, onboarding.members, onboarding.members_done) == (1, 30, 20)
    assert onboarding.chunks == {"done": 1, "await-export": 1}
    tail = snapshot.readings.audit
    assert tail.unsigned == 1 and tail.checkpoint_seq == tail.head_seq - 1
    assert 0 <= snapshot.audit_unsigned_age_seconds < 60

    body, _ = platform.metrics.render(None)
    gauges = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    assert gauges[("payerbridge_identity_reviews_open", ())] == 3
    assert gauges[("payerbridge_identity_reviews_open_older_than", (("seconds", "86400"),))] == 2
    assert (
        gauges[("payerbridge_partner_breaker_state", (("partner", "old"), ("state", "open")))] == 1
    )
    assert gauges[("payerbridge_partner_in_maintenance", (("partner", "away"),))] == 1
    assert gauges[("payerbridge_audit_unsigned_events", ())] == 1
    assert gauges[("payerbridge_onboarding_members_done", ())] == 20
    dead = (("reason_code", "attempts-exhausted"), ("step", "member-match"))
    assert gauges[("payerbridge_dead_letters", dead)] == 1
    # The console's plain values: the same numbers.
    charted = platform.metrics.samples(["payerbridge_identity_reviews_open_older_than"])
    assert sorted((labels["seconds"], v) for _, labels, v in charted) == [
        ("259200", 1),
        ("3600", 3),
        ("86400", 2),
    ]


def test_only_a_committed_units_events_are_counted(platform: Platform) -> None:
    registry = process_metrics().registry
    name, labels = (
        "payerbridge_exchange_transitions_total",
        {"state": "failed", "reason_code": "no-match"},
    )

    def counted() -> float:
        return registry.get_sample_value(name, labels) or 0.0

    before = counted()
    exchange_id = exchange_in(platform, "counted", [Move(S.VALIDATED)], datetime.now(UTC))
    uow, failed = platform.units.exchange(), [Move(S.FAILED, "no-match")]
    with pytest.raises(RuntimeError), uow:
        record_moves(uow, Advance(exchange_id, failed, uow.now, "test"))
        raise RuntimeError("rolled back")
    assert counted() == before
    with uow:
        record_moves(uow, Advance(exchange_id, failed, uow.now, "test"))
    assert counted() == before + 1


def test_the_obligation_rows_not_done_are_counted_by_where_they_stand_now(
    platform: Platform,
) -> None:
    now = datetime.now(UTC)
    answer = "answer-within-one-business-day"  # at risk 8 hours before it is due
    rows = [
        ("done", answer, now + timedelta(hours=1), now),  # done: not counted
        ("later", answer, now + timedelta(days=2), None),
        ("soon", answer, now + timedelta(hours=3), None),
        ("late", answer, now - timedelta(hours=1), None),
        ("asked", "request-after-enrolment", now + timedelta(days=6), None),
    ]
    with platform.engine.begin() as connection:
        connection.execute(
            obligation_clocks.insert(),
            [
                {
                    "id": f"c-{name}",
                    "obligation": obligation,
                    "obligation_version": "v",
                    "subject_type": "exchange",
                    "subject_id": f"ex-{name}",
                    "started_at": now - timedelta(days=1),
                    "due_at": due,
                    "done_at": done,
                    "standing": "pending",
                    "updated_at": now,
                }
                for name, obligation, due, done in rows
            ],
        )

    readings = {row.obligation: row for row in platform.metrics.snapshot().readings.obligations}

    got = readings[answer]
    assert (got.pending, got.at_risk, got.missed) == (1, 1, 1)
    asked = readings["request-after-enrolment"]
    assert (asked.pending, asked.at_risk, asked.missed) == (1, 0, 0)
    body, _ = platform.metrics.render(None)
    samples = {
        (sample.labels["obligation"], sample.labels["standing"]): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == "payerbridge_obligations_open"
    }
    assert samples[(answer, "at_risk")] == 1 and samples[(answer, "missed")] == 1


def test_the_standing_pulls_are_counted_by_kind_and_status_and_the_overdue_ones_apart(
    platform: Platform,
) -> None:
    now = datetime.now(UTC)
    ago = timedelta(days=2)
    running = exchange_in(platform, "running", [Move(S.VALIDATED)], now - ago)
    ended = exchange_in(platform, "ended", [Move(S.VALIDATED), Move(S.FAILED, "x")], now - ago)
    rows = [  # name, kind, status, next due, awaiting its last pull
        ("later", "quarterly", "active", now + timedelta(days=30), None),
        ("late", "quarterly", "active", now - ago, None),  # the sweep never started it
        ("just-due", "run-off", "active", now - timedelta(hours=3), None),
        ("pulling", "first", "active", now - ago, running),  # its pull still runs
        ("unread", "quarterly", "active", now - ago, ended),  # its ended pull never read
        ("stopped", "quarterly", "stopped", None, None),
    ]
    with platform.engine.begin() as connection:
        connection.execute(
            pull_schedules.insert(),
            [
                {
                    "id": f"p-{name}",
                    "kind": kind,
                    "status": status,
                    "partner_id": "old",
                    "client_id": "newplan",
                    "consent_id": "c-1",
                    "next_due_at": due,
                    "awaiting_pull": last is not None,
                    "last_exchange_id": last,
                    "created_by": "test",
                    "created_at": now - timedelta(days=90),
                    "updated_at": now - ago,
                }
                for name, kind, status, due, last in rows
            ],
        )

    reading = platform.metrics.snapshot().readings.pull_schedules

    counts = {(row.kind, row.status): row.count for row in reading.counts}
    assert counts == {
        ("first", "active"): 1,
        ("quarterly", "active"): 3,
        ("quarterly", "stopped"): 1,
        ("run-off", "active"): 1,
    }
    assert reading.overdue == 2  # late and unread
    body, _ = platform.metrics.render(None)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name.startswith("payerbridge_pull_schedules")
    }
    assert samples[("payerbridge_pull_schedules_overdue", ())] == 2
    quarterly = (("kind", "quarterly"), ("status", "active"))
    assert samples[("payerbridge_pull_schedules", quarterly)] == 3
    # Every pair of kind and status, those with no schedule at 0, and the overdue.
    assert len(samples) == 7
    assert samples[("payerbridge_pull_schedules", (("kind", "first"), ("status", "stopped")))] == 0


def test_exchanges_waiting_at_a_partner_are_counted_by_why_with_every_reason_at_zero(
    platform: Platform,
) -> None:
    """Parked on the breaker, in a maintenance window, after an unanswered call; one
    whose next attempt is past (it is being made) and one that stopped are not waiting."""
    now = datetime.now(UTC)
    later = now + timedelta(minutes=5)
    held = {
        "parked-1": (PARKED_FOR_BREAKER, later),
        "parked-2": (PARKED_FOR_BREAKER, later),
        "window": ("the partner is in its maintenance window until x (upgrade)", later),
        "unanswered": ("partner 'old' did not answer (ConnectError)", later),
        "due": (PARKED_FOR_BREAKER, now - timedelta(seconds=1)),
    }
    for name, (text, due) in held.items():
        exchange_id = exchange_in(platform, name, [Move(S.VALIDATED)], now)
        with platform.transactions.begin() as unit:
            attempt = Attempt("member-match", 1, due, now, text, {})
            platform.exchanges.within(unit).record_attempt(exchange_id, attempt, at=now)
    exchange_in(platform, "stopped", [Move(S.VALIDATED), Move(S.FAILED, "no-match")], now)

    body, _ = platform.metrics.render(None)
    waiting = {
        (sample.labels["partner"], sample.labels["reason"]): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == "payerbridge_exchanges_waiting"
    }
    assert waiting == {
        ("old", "circuit-open"): 2,
        ("old", "maintenance"): 1,
        ("old", "partner-unavailable"): 1,
        ("old", "rate-limited"): 0,
        ("away", "circuit-open"): 0,
        ("away", "maintenance"): 0,
        ("away", "partner-unavailable"): 0,
        ("away", "rate-limited"): 0,
    }
