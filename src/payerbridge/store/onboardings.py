"""Onboardings, their members and chunks in the database (Core, in the caller's unit of
work: resources are written in the same unit, through its Core connection first)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, Row, and_, insert, or_, select, update

from payerbridge.onboarding.model import (
    Chunk,
    MemberPatient,
    Onboarding,
    OnboardingMember,
    OnboardingStatus,
    Stage,
)
from payerbridge.store.at_rest import AtRest, at_rest
from payerbridge.store.dbapi import DialectSql, insert_rows
from payerbridge.store.sealed_fields import ONBOARDING_BUNDLE
from payerbridge.store.tables import onboarding_chunks, onboarding_members, onboardings
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId, OnboardingId, PartnerId

__all__ = ["SqlOnboardingStore"]

_MEMBER_COLUMNS = ("onboarding_id", "position", "member_id", "consent_id", "bundle")


class _MemberSql(DialectSql):
    def __init__(self, dialect: Any) -> None:
        super().__init__(dialect)
        self.members = self.rows_insert(onboarding_members, _MEMBER_COLUMNS)


class SqlOnboardingStore:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine

    def create(self, unit: UnitOfWork, onboarding: Onboarding, chunks: Sequence[Chunk]) -> None:
        connection = sql_unit(unit).connection
        connection.execute(
            insert(onboardings).values(
                id=onboarding.id,
                client_id=onboarding.client_id,
                partner_id=onboarding.partner_id,
                status=onboarding.status.value,
                total=onboarding.total,
                chunks=onboarding.chunks,
                created_at=onboarding.created_at,
                updated_at=onboarding.updated_at,
                since=onboarding.since,
            )
        )
        connection.execute(
            insert(onboarding_chunks),
            [
                {
                    "onboarding_id": c.onboarding_id,
                    "number": c.number,
                    "first_member": c.first,
                    "size": c.size,
                    "stage": c.stage.value,
                    "updated_at": onboarding.created_at,
                }
                for c in chunks
            ],
        )

    def add_members(
        self, unit: UnitOfWork, onboarding_id: OnboardingId, members: Sequence[OnboardingMember]
    ) -> None:
        """On the unit's DB-API path: they follow the members' consents."""
        sql_of = sql_unit(unit)
        keys = at_rest(sql_of)
        rows = [
            {
                "onboarding_id": onboarding_id,
                "position": m.position,
                "member_id": m.member_id,
                "consent_id": m.consent_id,
                "bundle": keys.seal(
                    orjson.dumps(m.bundle), ONBOARDING_BUNDLE, f"{onboarding_id}|{m.position}"
                ),
            }
            for m in members
        ]
        insert_rows(sql_of.cursor(), (_MemberSql.of(sql_of.dialect).members, rows))

    def get(self, onboarding_id: OnboardingId) -> Onboarding | None:
        with self._reader.connect() as connection:
            row = connection.execute(
                select(onboardings).where(onboardings.c.id == onboarding_id)
            ).first()
        if row is None:
            return None
        return Onboarding(
            id=OnboardingId(row.id),
            client_id=ClientId(row.client_id),
            partner_id=PartnerId(row.partner_id),
            status=OnboardingStatus(row.status),
            total=row.total,
            chunks=row.chunks,
            created_at=row.created_at,
            updated_at=row.updated_at,
            error=row.error,
            since=row.since,
            received_at=row.received_at,
        )

    def last_received_at(self, client_id: ClientId, partner_id: PartnerId) -> datetime | None:
        table = onboardings
        with self._reader.connect() as connection:
            return connection.execute(
                select(table.c.received_at)
                .where(
                    table.c.client_id == client_id,
                    table.c.partner_id == partner_id,
                    table.c.status == OnboardingStatus.COMPLETED.value,
                    table.c.received_at.is_not(None),
                )
                .order_by(table.c.updated_at.desc(), table.c.received_at.desc())
                .limit(1)
            ).scalar()

    def members(
        self, onboarding_id: OnboardingId, *, first: int = 0, size: int | None = None
    ) -> list[OnboardingMember]:
        table = onboarding_members
        query = select(table).where(
            table.c.onboarding_id == onboarding_id, table.c.position >= first
        )
        if size is not None:
            query = query.where(table.c.position < first + size)
        with self._reader.connect() as connection:
            rows = connection.execute(query.order_by(table.c.position)).all()
        keys = at_rest(self._reader)
        return [
            OnboardingMember(
                row.position,
                row.member_id,
                row.consent_id,
                _bundle(keys, row),
                row.result,
                row.old_patient,
                row.imported,
                row.changed,
                _member_patient(row.member_patient),
            )
            for row in rows
        ]

    def next_chunk(self, onboarding_id: OnboardingId) -> Chunk | None:
        table = onboarding_chunks
        with self._reader.connect() as connection:
            row = connection.execute(
                select(table)
                .where(table.c.onboarding_id == onboarding_id, table.c.stage != Stage.DONE.value)
                .order_by(table.c.number)
                .limit(1)
            ).first()
        return _chunk(row) if row is not None else None

    def chunks(self, onboarding_id: OnboardingId) -> list[Chunk]:
        table = onboarding_chunks
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(table).where(table.c.onboarding_id == onboarding_id).order_by(table.c.number)
            ).all()
        return [_chunk(row) for row in rows]

    def move_chunk(
        self,
        unit: UnitOfWork,
        chunk: Chunk,
        to: Stage,
        *,
        at: datetime,
        status_url: str | None = None,
        group_id: str | None = None,
        due_at: datetime | None = None,
    ) -> bool:
        table = onboarding_chunks
        result = sql_unit(unit).connection.execute(
            update(table)
            .where(
                table.c.onboarding_id == chunk.onboarding_id,
                table.c.number == chunk.number,
                table.c.stage == chunk.stage.value,
            )
            .values(
                stage=to.value,
                status_url=status_url,
                group_id=group_id,
                due_at=due_at,
                updated_at=at,
            )
        )
        return result.rowcount == 1

    def record_results(
        self,
        unit: UnitOfWork,
        onboarding_id: OnboardingId,
        results: Mapping[int, tuple[str, str | None]],
    ) -> None:
        connection = sql_unit(unit).connection
        for position, (result, old_patient) in results.items():
            connection.execute(
                _member(onboarding_id, position).values(result=result, old_patient=old_patient)
            )

    def record_imported(
        self,
        unit: UnitOfWork,
        onboarding_id: OnboardingId,
        counts: Mapping[int, int],
        *,
        changed: Mapping[int, int] | None = None,
    ) -> None:
        connection = sql_unit(unit).connection
        changed = changed or {}
        for position, count in counts.items():
            values = {"imported": count}
            if position in changed:
                values["changed"] = changed[position]
            connection.execute(_member(onboarding_id, position).values(**values))

    def record_member_patients(
        self,
        unit: UnitOfWork,
        onboarding_id: OnboardingId,
        chosen: Mapping[int, MemberPatient],
    ) -> None:
        connection = sql_unit(unit).connection
        for position, member_patient in chosen.items():
            text = orjson.dumps(member_patient.to_json()).decode()
            connection.execute(_member(onboarding_id, position).values(member_patient=text))

    def record_received(self, unit: UnitOfWork, onboarding_id: OnboardingId, at: datetime) -> None:
        table = onboardings
        sql_unit(unit).connection.execute(
            update(table)
            .where(
                table.c.id == onboarding_id,
                or_(table.c.received_at.is_(None), table.c.received_at > at),
            )
            .values(received_at=at)
        )

    def finish(
        self,
        unit: UnitOfWork,
        onboarding_id: OnboardingId,
        status: OnboardingStatus,
        *,
        at: datetime,
        error: str | None = None,
    ) -> bool:
        connection = sql_unit(unit).connection
        result = connection.execute(
            update(onboardings)
            .where(
                onboardings.c.id == onboarding_id,
                onboardings.c.status == OnboardingStatus.RUNNING.value,
            )
            .values(status=status.value, updated_at=at, error=error)
        )
        if result.rowcount != 1:
            return False
        # The bundles carry the members' demographics: not kept past the run.
        connection.execute(
            update(onboarding_members)
            .where(onboarding_members.c.onboarding_id == onboarding_id)
            .values(bundle="")
        )
        return True


def _member_patient(text: str | None) -> MemberPatient | None:
    if text is None:
        return None
    kept = orjson.loads(text)
    return MemberPatient(kept["patient"], kept["how"], tuple(kept.get("differences") or ()))


def _member(onboarding_id: OnboardingId, position: int) -> Any:
    table = onboarding_members
    return update(table).where(
        and_(table.c.onboarding_id == onboarding_id, table.c.position == position)
    )


def _chunk(row: Row[Any]) -> Chunk:
    return Chunk(
        onboarding_id=OnboardingId(row.onboarding_id),
        number=row.number,
        first=row.first_member,
        size=row.size,
        stage=Stage(row.stage),
        status_url=row.status_url,
        group_id=row.group_id,
        due_at=row.due_at,
    )


def _bundle(keys: AtRest, row: Any) -> dict[str, Any]:
    """A member's bundle, opened; empty once its run ended (or erased to ``{}``)."""
    if not row.bundle:
        return {}
    bundle: dict[str, Any] = orjson.loads(
        keys.open(row.bundle, ONBOARDING_BUNDLE, f"{row.onboarding_id}|{row.position}")
    )
    return bundle
