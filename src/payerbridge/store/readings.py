"""The aggregated reads a metrics scrape makes (``metrics.readings.ReadingsSource``).

A handful of queries on one read connection, each an aggregate over an index or over a
small table, so that a scrape costs the same at a thousand exchanges as at a million
give or take an index scan: exchanges by (state, error code) over
``ix_exchanges_state_reason``, open review cases over ``ix_identity_reviews_status``,
dead letters joined by key to exchanges still dead-lettered, unfinished bulk jobs over
``ix_bulk_jobs_status``, the chunks of running onboardings by key, the audit chain's
head, last checkpoint and first unsigned event, each by key, and the standing pulls by
kind and status with those overdue (``store.pull_lateness``, the console's rule too)
over ``ix_pull_schedules_due``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    func,
    literal,
    null,
    select,
    union_all,
)

from payerbridge.exchange.model import (
    STOPPED_STATES,
    BreakerState,
    BreakerStatus,
    ExchangeState,
    as_seen,
)
from payerbridge.metrics.model import (
    AuditTail,
    BreakerReading,
    DatabaseReadings,
    DeadLetterCount,
    ExchangeCount,
    JobProgress,
    ObligationsOpen,
    OnboardingProgress,
    PullScheduleCount,
    PullSchedulesReading,
    ReviewBacklog,
    WaitingCount,
)
from payerbridge.store.pull_lateness import WITH_LAST_PULL, is_past_due, lateness
from payerbridge.store.tables import (
    audit_checkpoints,
    audit_events,
    audit_head,
    bulk_jobs,
    dead_letters,
    exchanges,
    identity_reviews,
    obligation_clocks,
    onboarding_chunks,
    onboardings,
    partner_breakers,
    pull_schedules,
)

__all__ = ["SqlReadingsSource"]

_UNFINISHED_JOBS = ("accepted", "running")


class SqlReadingsSource:
    def __init__(self, reader: Engine, *, risk_windows: Mapping[str, timedelta]) -> None:
        self._reader = reader
        self._risk_windows = dict(risk_windows)  # per obligation: at risk this long before

    def read(self, *, now: datetime, review_ages: Sequence[timedelta]) -> DatabaseReadings:
        with self._reader.connect() as connection:
            return DatabaseReadings(
                exchanges=_exchanges(connection),
                reviews=_reviews(connection, now, review_ages),
                dead_letters=_dead_letters(connection),
                breakers=_breakers(connection, now),
                bulk_jobs=_bulk_jobs(connection),
                onboardings=_onboardings(connection),
                audit=_audit_tail(connection),
                obligations=_obligations(connection, now, self._risk_windows),
                pull_schedules=_pull_schedules(connection, now),
                waiting=_waiting(connection, now),
            )


def _obligations(
    connection: Connection, now: datetime, windows: Mapping[str, timedelta]
) -> tuple[ObligationsOpen, ...]:
    """The rows not done yet, from ``ix_obligation_clocks_open`` (those rows only)."""
    clocks = obligation_clocks
    due = clocks.c.due_at
    # At risk from ``due - w`` on, that instant included (``ObligationSet.standing``).
    risky = [(and_(clocks.c.obligation == name, due <= now + w), 1) for name, w in windows.items()]
    at_risk = case((due < now, 0), *risky, else_=0) if risky else literal(0)
    rows = connection.execute(
        select(
            clocks.c.obligation,
            func.count(),
            func.coalesce(func.sum(at_risk), 0),
            func.coalesce(func.sum(case((due < now, 1), else_=0)), 0),
        )
        .where(clocks.c.done_at.is_(None), due.is_not(None))
        .group_by(clocks.c.obligation)
    ).all()
    return tuple(
        ObligationsOpen(name, int(total) - int(risk) - int(missed), int(risk), int(missed))
        for name, total, risk, missed in sorted(rows)
    )


def _pull_schedules(connection: Connection, now: datetime) -> PullSchedulesReading:
    """One statement: the schedules by kind and status (a scan of one row per member and
    old payer, its leading columns only: fewer rows than the exchanges they make), and
    the active ones overdue by the rule the console marks by (``lateness``): the past due
    from ``ix_pull_schedules_due`` (a few rows at most while the sweep runs), each joined
    by key to its last pull to leave out those whose pull still runs or waits for a
    reviewer. The overdue count is the row without a kind."""
    t = pull_schedules
    counts = select(t.c.kind, t.c.status, func.count()).group_by(t.c.kind, t.c.status)
    overdue = (
        select(null().label("kind"), null().label("status"), func.count())
        .select_from(WITH_LAST_PULL)
        .where(is_past_due(now), lateness(now) == "overdue")
    )
    rows = connection.execute(union_all(counts, overdue)).all()
    found = sorted((kind, status, int(n)) for kind, status, n in rows if kind is not None)
    return PullSchedulesReading(
        counts=tuple(PullScheduleCount(*row) for row in found),
        overdue=sum(int(n) for kind, _, n in rows if kind is None),
    )


def _exchanges(connection: Connection) -> tuple[ExchangeCount, ...]:
    """Counts by state and reason. One statement, so one snapshot: the exchanges of each
    state, then those of them that carry a reason (each branch read from its own index,
    the reason's holding only rows that have one); the rest of a state have none."""
    state, code = exchanges.c.state, exchanges.c.error_code
    every = select(state, null().label("code"), func.count()).group_by(state)
    reasoned = select(state, code, func.count()).where(code.is_not(None)).group_by(state, code)
    rows = connection.execute(union_all(every, reasoned)).all()
    totals = {name: int(count) for name, reason, count in rows if reason is None}
    found = []
    for name, reason, count in rows:
        if reason is not None:
            found.append(ExchangeCount(name, reason, int(count)))
            totals[name] -= int(count)
    found += [ExchangeCount(name, None, rest) for name, rest in totals.items() if rest > 0]
    return tuple(found)


def _reviews(
    connection: Connection, now: datetime, review_ages: Sequence[timedelta]
) -> ReviewBacklog:
    opened = identity_reviews.c.opened_at
    past = [
        func.coalesce(func.sum(case((opened < now - age, 1), else_=0)), 0) for age in review_ages
    ]
    row = connection.execute(
        select(func.count(), func.min(opened), *past).where(identity_reviews.c.status == "open")
    ).one()
    return ReviewBacklog(
        open=int(row[0]),
        oldest_opened_at=row[1],
        older_than={
            int(age.total_seconds()): int(count)
            for age, count in zip(review_ages, row[2:], strict=True)
        },
    )


def _waiting(connection: Connection, now: datetime) -> tuple[WaitingCount, ...]:
    """The exchanges in flight whose next attempt is still to come, by partner and the
    text of what holds them (read from ``ix_exchanges_state``: those in flight only)."""
    t = exchanges.c
    in_flight = [s.value for s in ExchangeState if s not in STOPPED_STATES]
    rows = connection.execute(
        select(t.partner_id, t.last_error, func.count())
        .where(t.state.in_(in_flight), t.next_attempt_at > now)
        .group_by(t.partner_id, t.last_error)
    ).all()
    return tuple(WaitingCount(partner, text, int(n)) for partner, text, n in rows)


def _dead_letters(connection: Connection) -> tuple[DeadLetterCount, ...]:
    rows = connection.execute(
        select(
            dead_letters.c.step,
            dead_letters.c.reason_code,
            func.count(),
            func.min(dead_letters.c.dead_lettered_at),
        )
        .join(exchanges, exchanges.c.id == dead_letters.c.exchange_id)
        .where(exchanges.c.state == "dead_lettered")
        .group_by(dead_letters.c.step, dead_letters.c.reason_code)
    ).all()
    return tuple(DeadLetterCount(step, code, int(n), oldest) for step, code, n, oldest in rows)


def _breakers(connection: Connection, now: datetime) -> tuple[BreakerReading, ...]:
    """Each endpoint's breaker as it stands ``now``: one past its ``open_until`` waits for
    its probe, half-open (``exchange.calls.breaker.as_seen``), not open for ever."""
    rows = connection.execute(
        select(
            partner_breakers.c.partner_id,
            partner_breakers.c.endpoint,
            partner_breakers.c.status,
            partner_breakers.c.open_until,
        )
    ).all()
    return tuple(
        BreakerReading(
            partner,
            endpoint,
            as_seen(BreakerState(BreakerStatus(status), open_until=until), now).status.value,
        )
        for partner, endpoint, status, until in rows
    )


def _bulk_jobs(connection: Connection) -> tuple[JobProgress, ...]:
    rows = connection.execute(
        select(
            bulk_jobs.c.kind,
            bulk_jobs.c.status,
            func.count(),
            func.coalesce(func.sum(bulk_jobs.c.total), 0),
            func.coalesce(func.sum(bulk_jobs.c.done), 0),
        )
        .where(bulk_jobs.c.status.in_(_UNFINISHED_JOBS))
        .group_by(bulk_jobs.c.kind, bulk_jobs.c.status)
    ).all()
    return tuple(
        JobProgress(kind, status, int(jobs), int(members), int(done))
        for kind, status, jobs, members, done in rows
    )


def _onboardings(connection: Connection) -> OnboardingProgress:
    running = onboardings.c.status == "running"
    jobs, members = connection.execute(
        select(func.count(), func.coalesce(func.sum(onboardings.c.total), 0)).where(running)
    ).one()
    rows: list[Any] = list(
        connection.execute(
            select(onboarding_chunks.c.stage, func.count(), func.sum(onboarding_chunks.c.size))
            .join(onboardings, onboardings.c.id == onboarding_chunks.c.onboarding_id)
            .where(running)
            .group_by(onboarding_chunks.c.stage)
        ).all()
    )
    return OnboardingProgress(
        running=int(jobs),
        members=int(members),
        members_done=sum(int(size or 0) for stage, _, size in rows if stage == "done"),
        chunks={stage: int(count) for stage, count, _ in rows},
    )


def _audit_tail(connection: Connection) -> AuditTail:
    head = connection.execute(select(audit_head.c.seq).where(audit_head.c.id == 1)).scalar()
    last = connection.execute(
        select(audit_checkpoints.c.seq, audit_checkpoints.c.at)
        .order_by(audit_checkpoints.c.seq.desc())
        .limit(1)
    ).first()
    signed, signed_at = (int(last[0]), last[1]) if last is not None else (0, None)
    head_seq = int(head or 0)
    oldest = None
    if head_seq > signed:
        oldest = connection.execute(
            select(audit_events.c.at).where(audit_events.c.seq == signed + 1)
        ).scalar()
    return AuditTail(
        head_seq=head_seq, checkpoint_seq=signed, checkpoint_at=signed_at, oldest_unsigned_at=oldest
    )
