"""The oversight room's reads (``oversight.ports.Oversight``): counts grouped by bucket in
the database, each over an index that holds the instant it groups by; one page of bulk
jobs or onboardings with their progress in two grouped queries, not one per row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Engine, and_, case, func, select

from payerbridge.exchange.model import ExchangeState
from payerbridge.oversight.model import BucketCount, Grain, JobProgress, OnboardingProgress
from payerbridge.store.tables import (
    audit_events,
    bulk_jobs,
    dead_letters,
    exchanges,
    identity_decisions,
    identity_reviews,
    onboarding_chunks,
    onboarding_members,
    onboardings,
)

__all__ = ["SqlOversight"]


class SqlOversight:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._reader = reader or engine
        self._postgres = engine.dialect.name == "postgresql"

    def _bucket(self, column: Any, grain: Grain) -> ColumnElement[str]:
        """The bucket key of an instant (``oversight.model.bucket_key``), in SQL: SQLite
        keeps instants as UTC text, PostgreSQL as timestamptz."""
        if self._postgres:
            pattern = "YYYY-MM-DD HH24" if grain is Grain.HOUR else "YYYY-MM-DD"
            return func.to_char(func.timezone("UTC", column), pattern)
        return func.substr(column, 1, 13 if grain is Grain.HOUR else 10)

    def _counts(
        self, instant: Any, kind: Any, since: datetime, grain: Grain, *where: Any
    ) -> list[BucketCount]:
        bucket = self._bucket(instant, grain).label("bucket")
        query = (
            select(bucket, kind.label("kind"), func.count().label("n"))
            .where(instant >= since, *where)
            .group_by(bucket, kind)
        )
        with self._reader.connect() as connection:
            rows = connection.execute(query).all()
        return [BucketCount(str(row.bucket), str(row.kind), int(row.n)) for row in rows]

    def exchanges_created(self, since: datetime, grain: Grain) -> list[BucketCount]:
        # Every state named: the (state, created_at) index then answers alone, a range per
        # state, where the created_at index would read every row for its state.
        every = exchanges.c.state.in_([state.value for state in ExchangeState])
        return self._counts(exchanges.c.created_at, exchanges.c.state, since, grain, every)

    def match_outcomes(self, since: datetime, grain: Grain) -> list[BucketCount]:
        decisions = identity_decisions.c
        return self._counts(decisions.decided_at, decisions.outcome, since, grain)

    def reviews_opened(self, since: datetime, grain: Grain) -> list[BucketCount]:
        reviews = identity_reviews.c
        return self._counts(reviews.opened_at, reviews.status, since, grain)

    def reviews_closed(self, since: datetime, grain: Grain) -> list[BucketCount]:
        reviews = identity_reviews.c
        return self._counts(
            reviews.decided_at, reviews.status, since, grain, reviews.status != "open"
        )

    def open_reviews(self) -> tuple[int, datetime | None]:
        reviews = identity_reviews.c
        query = select(func.count(), func.min(reviews.opened_at)).where(reviews.status == "open")
        with self._reader.connect() as connection:
            count, oldest = connection.execute(query).one()
        return int(count), _aware(oldest)

    def dead_letters(self, since: datetime, grain: Grain) -> list[BucketCount]:
        letters = dead_letters.c
        return self._counts(letters.dead_lettered_at, letters.reason_code, since, grain)

    def partner_exchanges(self, since: datetime) -> dict[str, dict[str, int]]:
        query = (
            select(exchanges.c.partner_id, exchanges.c.state, func.count())
            .where(exchanges.c.created_at >= since)
            .group_by(exchanges.c.partner_id, exchanges.c.state)
        )
        found: dict[str, dict[str, int]] = {}
        with self._reader.connect() as connection:
            for partner, state, count in connection.execute(query):
                found.setdefault(str(partner), {})[str(state)] = int(count)
        return found

    def bulk_jobs(
        self, *, status: str | None, offset: int, count: int
    ) -> tuple[int, list[JobProgress]]:
        jobs = bulk_jobs.c
        where = [jobs.status == status] if status else []
        columns = (jobs.id, jobs.kind, jobs.status, jobs.client_id, jobs.total, jobs.done)
        page = (
            select(*columns, jobs.created_at, jobs.updated_at, jobs.error)
            .where(*where)
            .order_by(jobs.updated_at.desc(), jobs.id)
            .limit(count)
            .offset(offset)
        )
        with self._reader.connect() as connection:
            total = connection.execute(select(func.count()).select_from(bulk_jobs).where(*where))
            rows = connection.execute(page).all()
            return int(total.scalar_one()), [JobProgress(*row) for row in rows]

    def onboardings(
        self, *, status: str | None, offset: int, count: int
    ) -> tuple[int, list[OnboardingProgress]]:
        runs = onboardings.c
        where = [runs.status == status] if status else []
        page = (
            select(onboardings)
            .where(*where)
            .order_by(runs.updated_at.desc(), runs.id)
            .limit(count)
            .offset(offset)
        )
        with self._reader.connect() as connection:
            total = connection.execute(select(func.count()).select_from(onboardings).where(*where))
            rows = connection.execute(page).all()
            ids = [row.id for row in rows]
            members = _member_progress(connection, ids)
            chunks = _chunks_done(connection, ids)
            return int(total.scalar_one()), [
                OnboardingProgress(
                    id=row.id,
                    partner_id=row.partner_id,
                    client_id=row.client_id,
                    status=row.status,
                    total=row.total,
                    chunks=row.chunks,
                    chunks_done=chunks.get(row.id, 0),
                    matched=members.get(row.id, (0, 0, 0))[0],
                    decided=members.get(row.id, (0, 0, 0))[1],
                    imported=members.get(row.id, (0, 0, 0))[2],
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                    error=row.error,
                )
                for row in rows
            ]

    def last_event(self, entity_type: str, entity_id: str, action: str) -> dict[str, Any] | None:
        events = audit_events.c
        query = (
            select(audit_events)
            .where(
                events.entity_type == entity_type,
                events.entity_id == entity_id,
                events.action == action,
            )
            .order_by(events.seq.desc())
            .limit(1)
        )
        with self._reader.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        return {
            "seq": row.seq,
            "at": _aware(row.at),
            "actor": row.actor,
            "action": row.action,
            "outcome": row.outcome,
            "detail": orjson.loads(row.detail) if row.detail else {},
        }


def _member_progress(connection: Any, ids: list[str]) -> dict[str, tuple[int, int, int]]:
    """Per onboarding of ``ids``: members matched, members with a result, members imported."""
    if not ids:
        return {}
    members = onboarding_members.c
    query = (
        select(
            members.onboarding_id,
            func.sum(case((members.result == "match", 1), else_=0)),
            func.count(members.result),
            func.count(members.imported),
        )
        .where(members.onboarding_id.in_(ids))
        .group_by(members.onboarding_id)
    )
    return {
        str(row[0]): (int(row[1] or 0), int(row[2]), int(row[3]))
        for row in connection.execute(query)
    }


def _chunks_done(connection: Any, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    chunks = onboarding_chunks.c
    query = (
        select(chunks.onboarding_id, func.count())
        .where(and_(chunks.onboarding_id.in_(ids), chunks.stage == "done"))
        .group_by(chunks.onboarding_id)
    )
    return {str(row[0]): int(row[1]) for row in connection.execute(query)}


def _aware(value: datetime | str | None) -> datetime | None:
    """``func.min`` may bypass the column's type: SQLite gives the stored text back."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
