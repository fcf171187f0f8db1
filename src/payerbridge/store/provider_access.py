"""Provider Access in the database (ADR 0059): the attributions, the members' opt-out
choices, and the plan's own claims and encounters read for the services they show
(``provider_access.ports``)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import date
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, delete, insert, not_, or_, select

from payerbridge.provider_access.model import (
    PROVIDER_TYPES,
    SERVICE_TYPES,
    Attribution,
    AttributionBasis,
    Choice,
    OptOutChoice,
    OptOutReason,
    OptOutScope,
)
from payerbridge.store.at_rest import at_rest
from payerbridge.store.dbapi import DialectSql
from payerbridge.store.sealed_fields import RESOURCE_BODY
from payerbridge.store.tables import fhir_resources, opt_out_choices, provider_attributions
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork
from payerbridge.types import MemberId

__all__ = ["SqlAttributions", "SqlOptOuts", "SqlServiceRecords"]

_BATCH = 1000  # rows read, or ids per IN (...), at a time
_ADD = (
    "INSERT INTO provider_attributions (provider_npi, member_id, start_day, end_day, basis, "
    "roster, recorded_at) VALUES (:provider_npi, :member_id, :start_day, :end_day, :basis, "
    ":roster, :recorded_at)"
)
# What other payers sent (exchanges, onboardings) is theirs: it shows no service of ours.
_RECEIVED = ("exchange:%", "onboarding:%")


def _connection(unit: UnitOfWork) -> Connection:
    return sql_unit(unit).connection


def _rows(attributions: Sequence[Attribution], at: Any) -> list[dict[str, Any]]:
    return [
        {
            "provider_npi": a.provider_npi,
            "member_id": a.member_id,
            "start_day": a.start,
            "end_day": a.end,
            "basis": a.basis.value,
            "roster": a.roster,
            "recorded_at": at,
        }
        for a in attributions
    ]


class SqlAttributions:
    """``AttributionStore``."""

    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine

    def _replace(self, unit: UnitOfWork, where: Any, attributions: Sequence[Attribution]) -> int:
        connection = _connection(unit)
        replaced = connection.execute(delete(provider_attributions).where(where)).rowcount
        rows = _rows(attributions, unit.now)
        for start in range(0, len(rows), _BATCH):
            connection.execute(insert(provider_attributions), rows[start : start + _BATCH])
        return int(replaced or 0)

    def add(self, unit: UnitOfWork, attributions: Sequence[Attribution]) -> None:
        """By the unit's DB-API cursor: a bulk chunk's unit writes its decisions so, and
        Core statements may not follow its cursor's."""
        if not attributions:
            return
        sql = DialectSql(self._engine.dialect)
        day = (lambda d: d) if sql.is_postgres else date.isoformat
        rows = [
            {
                **row,
                "start_day": day(row["start_day"]),
                "end_day": day(row["end_day"]),
                "recorded_at": sql.timestamp(unit.now),
            }
            for row in _rows(attributions, unit.now)
        ]
        sql_unit(unit).cursor().executemany(sql.sql(_ADD), rows)

    def replace_derived(self, unit: UnitOfWork, attributions: Sequence[Attribution]) -> int:
        where = provider_attributions.c.basis == AttributionBasis.CLAIMS.value
        return self._replace(unit, where, attributions)

    def replace_roster(
        self, unit: UnitOfWork, roster: str, attributions: Sequence[Attribution]
    ) -> int:
        c = provider_attributions.c
        where = and_(c.basis == AttributionBasis.ROSTER.value, c.roster == roster)
        return self._replace(unit, where, attributions)

    def holding(
        self, provider_npi: str, day: date, *, among: Collection[MemberId] | None = None
    ) -> list[Attribution]:
        c = provider_attributions.c
        query = select(provider_attributions).where(
            c.provider_npi == provider_npi, c.start_day <= day, c.end_day >= day
        )
        if among is not None:  # an export's chunk: its members alone, not the whole roster
            query = query.where(c.member_id.in_(list(among)))
        with self._reader.connect() as connection:
            return [
                Attribution(
                    r.provider_npi,
                    MemberId(r.member_id),
                    r.start_day,
                    r.end_day,
                    AttributionBasis(r.basis),
                    r.roster,
                )
                for r in connection.execute(query)
            ]


class SqlOptOuts:
    """``OptOutStore``."""

    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine

    def record(self, unit: UnitOfWork, choice: OptOutChoice, actor: str) -> int:
        result = _connection(unit).execute(
            insert(opt_out_choices).values(
                member_id=choice.member_id,
                choice=choice.choice.value,
                scope=choice.scope.value,
                provider_npi=choice.provider_npi,
                reason=None if choice.reason is None else choice.reason.value,
                effective=choice.effective,
                recorded_at=unit.now,
                actor=actor[:200],
            )
        )
        key = result.inserted_primary_key
        if key is None:  # never: the row was just inserted
            raise RuntimeError("the opt-out choice was not kept")
        return int(key[0])

    def of_members(self, member_ids: Iterable[MemberId]) -> dict[MemberId, list[OptOutChoice]]:
        ids = sorted(set(member_ids))
        found: dict[MemberId, list[OptOutChoice]] = {}
        c = opt_out_choices.c
        with self._reader.connect() as connection:
            for start in range(0, len(ids), _BATCH):
                rows = connection.execute(
                    select(opt_out_choices)
                    .where(c.member_id.in_(ids[start : start + _BATCH]))
                    .order_by(c.seq)
                )
                for r in rows:
                    found.setdefault(MemberId(r.member_id), []).append(
                        OptOutChoice(
                            MemberId(r.member_id),
                            Choice(r.choice),
                            OptOutScope(r.scope),
                            r.effective,
                            r.seq,
                            r.provider_npi,
                            None if r.reason is None else OptOutReason(r.reason),
                        )
                    )
        return found


class SqlServiceRecords:
    """``ServiceRecords``: the plan's own claims and encounters (every stored resource
    but what other payers sent), their bodies opened a batch at a time."""

    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._reader = reader or engine

    def _bodies(self, connection: Connection, types: Sequence[str]) -> Iterator[Any]:
        """The plan's own resources of ``types``, in ref order, a batch at a time."""
        r = fhir_resources.c
        own = not_(or_(*(r.source.like(pattern) for pattern in _RECEIVED)))
        opened = at_rest(connection)
        after = ""
        while True:
            rows = connection.execute(
                select(r.ref, r.patient_id, r.body)
                .where(r.resource_type.in_(types), own, r.ref > after)
                .order_by(r.ref)
                .limit(_BATCH)
            ).all()
            if not rows:
                return
            for row in rows:
                yield row, orjson.loads(opened.open(row.body, RESOURCE_BODY, row.ref))
            after = rows[-1].ref

    def providers(self) -> Iterator[tuple[str, dict[str, Any]]]:
        with self._reader.connect() as connection:
            for row, body in self._bodies(connection, PROVIDER_TYPES):
                yield row.ref, body

    def services(self) -> Iterator[tuple[MemberId, dict[str, Any]]]:
        with self._reader.connect() as connection:
            for row, body in self._bodies(connection, SERVICE_TYPES):
                if row.patient_id:
                    yield MemberId(row.patient_id), body

    def known_members(self, member_ids: Iterable[MemberId]) -> set[MemberId]:
        ids = sorted(set(member_ids))
        r = fhir_resources.c
        found: set[MemberId] = set()
        with self._reader.connect() as connection:
            for start in range(0, len(ids), _BATCH):
                refs = [f"Patient/{m}" for m in ids[start : start + _BATCH]]
                rows = connection.execute(select(r.resource_id).where(r.ref.in_(refs)))
                found.update(MemberId(row.resource_id) for row in rows)
        return found
