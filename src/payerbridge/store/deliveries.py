"""Deliveries of received records to the plan's FHIR server, what each destination holds
from us (``SqlDeliveryStore``), and the record an exchange received as we hold it
(``SqlHeldRecords``). Every write is in the caller's unit of work."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, select

from payerbridge.delivery.model import (
    ENDED_STATES,
    DeliveryRecord,
    DeliveryState,
    DestinationAnswer,
    delivery_id,
)
from payerbridge.store.at_rest import at_rest
from payerbridge.store.delivery_tables import destination_deliveries, destination_writes
from payerbridge.store.sealed_fields import RESOURCE_BODY
from payerbridge.store.tables import fhir_resources
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ExchangeId

__all__ = ["SqlDeliveryStore", "SqlHeldRecords"]

_D = destination_deliveries.c
# A delivery's one workflow is its only claimant: one recovered after a crash while it
# was delivering takes it again.
_OPEN = (
    DeliveryState.PENDING.value,
    DeliveryState.WAITING.value,
    DeliveryState.DELIVERING.value,
)


def _record(row: Any) -> DeliveryRecord:
    return DeliveryRecord(
        id=row.id,
        exchange_id=ExchangeId(row.exchange_id),
        destination_id=row.destination_id,
        run=row.run,
        state=DeliveryState(row.state),
        attempts=row.attempts,
        next_at=row.next_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        reason_code=row.reason_code,
        issue_codes=tuple(orjson.loads(row.issue_codes or "[]")),
        outcome_hash=row.outcome_hash,
        written=orjson.loads(row.written),
        unchanged=row.unchanged,
    )


class SqlDeliveryStore:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._reader = reader or engine

    def open(
        self, unit: UnitOfWork, *, exchange_id: ExchangeId, destination_id: str, run: int
    ) -> str:
        connection = sql_unit(unit).connection
        key = delivery_id(exchange_id, destination_id, run)
        if connection.execute(select(_D.id).where(_D.id == key)).first() is None:
            connection.execute(
                destination_deliveries.insert().values(
                    id=key,
                    exchange_id=exchange_id,
                    destination_id=destination_id,
                    run=run,
                    state=DeliveryState.PENDING.value,
                    attempts=0,
                    next_at=unit.now,
                    created_at=unit.now,
                    written="{}",
                    unchanged=0,
                )
            )
        return key

    def claim(self, unit: UnitOfWork, delivery_id: str, *, now: datetime) -> DeliveryRecord | None:
        connection = sql_unit(unit).connection
        row = connection.execute(select(destination_deliveries).where(_D.id == delivery_id)).first()
        if row is None or row.state not in _OPEN or (row.next_at and row.next_at > now):
            return None
        started = row.started_at or now
        taken = connection.execute(
            destination_deliveries.update()
            .where(_D.id == delivery_id, _D.state == row.state, _D.attempts == row.attempts)
            .values(
                state=DeliveryState.DELIVERING.value,
                attempts=row.attempts + 1,
                started_at=started,
                next_at=now,
            )
        ).rowcount
        if not taken:
            return None
        return self._read(connection, delivery_id)

    def due(self, delivery_id: str) -> datetime | None:
        with self._reader.connect() as connection:
            row = connection.execute(
                select(_D.state, _D.next_at).where(_D.id == delivery_id)
            ).first()
        if row is None or DeliveryState(row.state) in ENDED_STATES:
            return None
        due: datetime | None = row.next_at
        return due

    def overdue(self, *, before: datetime, limit: int = 1000) -> list[str]:
        with self._reader.connect() as connection:
            return list(
                connection.execute(
                    select(_D.id)
                    .where(_D.state.in_(_OPEN), _D.next_at < before)
                    .order_by(_D.next_at)
                    .limit(limit)
                ).scalars()
            )

    def of_exchange(self, exchange_id: ExchangeId) -> list[DeliveryRecord]:
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(destination_deliveries)
                .where(_D.exchange_id == exchange_id)
                .order_by(_D.run.desc(), _D.destination_id)
            ).all()
        return [_record(row) for row in rows]

    def written_hashes(self, destination_id: str, refs: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        w = destination_writes.c
        with self._reader.connect() as connection:
            for start in range(0, len(refs), 500):
                chunk = list(refs[start : start + 500])
                rows = connection.execute(
                    select(w.ref, w.content_hash).where(
                        w.destination_id == destination_id, w.ref.in_(chunk)
                    )
                )
                found.update({row.ref: row.content_hash for row in rows})
        return found

    def wrote(
        self,
        unit: UnitOfWork,
        delivery_id: str,
        *,
        hashes: Mapping[str, str],
        counts: Mapping[str, int],
    ) -> None:
        connection = sql_unit(unit).connection
        record = self._read(connection, delivery_id)
        w = destination_writes.c
        refs = list(hashes)
        for start in range(0, len(refs), 500):
            connection.execute(
                destination_writes.delete().where(
                    w.destination_id == record.destination_id, w.ref.in_(refs[start : start + 500])
                )
            )
        if refs:
            connection.execute(
                destination_writes.insert(),
                [
                    {
                        "destination_id": record.destination_id,
                        "ref": ref,
                        "content_hash": digest,
                        "delivery_id": delivery_id,
                        "written_at": unit.now,
                    }
                    for ref, digest in hashes.items()
                ],
            )
        total = dict(record.written)
        for kind, count in counts.items():
            total[kind] = total.get(kind, 0) + count
        connection.execute(
            destination_deliveries.update()
            .where(_D.id == delivery_id)
            .values(written=orjson.dumps(dict(sorted(total.items()))).decode())
        )

    def wait(self, unit: UnitOfWork, delivery_id: str, *, until: datetime, error: str) -> None:
        sql_unit(unit).connection.execute(
            destination_deliveries.update()
            .where(_D.id == delivery_id)
            .values(state=DeliveryState.WAITING.value, next_at=until, last_error=error[:500])
        )

    def end(
        self,
        unit: UnitOfWork,
        delivery_id: str,
        *,
        state: DeliveryState,
        answer: DestinationAnswer | None = None,
        unchanged: int = 0,
    ) -> DeliveryRecord:
        connection = sql_unit(unit).connection
        values: dict[str, Any] = {
            "state": state.value,
            "next_at": None,
            "ended_at": unit.now,
            "unchanged": unchanged,
        }
        if answer is not None:
            values |= {
                "reason_code": answer.reason.value if answer.reason else None,
                "issue_codes": orjson.dumps(list(answer.issue_codes)).decode(),
                "outcome_hash": answer.outcome_hash,
                "last_error": answer.error[:500] or None,
            }
        connection.execute(
            destination_deliveries.update().where(_D.id == delivery_id).values(**values)
        )
        return self._read(connection, delivery_id)

    @staticmethod
    def _read(connection: Any, delivery_id: str) -> DeliveryRecord:
        row = connection.execute(select(destination_deliveries).where(_D.id == delivery_id)).one()
        return _record(row)


class SqlHeldRecords:
    """The resources stored from an exchange (``source = exchange:<id>``), opened."""

    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._reader = reader or engine

    def of_exchange(self, exchange_id: ExchangeId) -> list[dict[str, Any]]:
        at = at_rest(self._reader)
        f = fhir_resources.c
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(f.ref, f.body).where(f.source == f"exchange:{exchange_id}").order_by(f.ref)
            ).all()
        return [orjson.loads(at.open(row.body, RESOURCE_BODY, row.ref)) for row in rows]
