"""Deliveries of received records to the plan's FHIR server, what each destination holds
from us (``SqlDeliveryStore``), and the record an exchange received as we hold it
(``SqlHeldRecords``). Every write is in the caller's unit of work."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence, Set
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
        subject=row.subject,
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

    def open(self, unit: UnitOfWork, *, subject: str, destination_id: str, run: int) -> str:
        connection = sql_unit(unit).connection
        key = delivery_id(subject, destination_id, run)
        if connection.execute(select(_D.id).where(_D.id == key)).first() is None:
            connection.execute(
                destination_deliveries.insert().values(
                    id=key,
                    subject=subject,
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

    def of_subject(self, subject: str) -> list[DeliveryRecord]:
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(destination_deliveries)
                .where(_D.subject == subject)
                .order_by(_D.run.desc(), _D.destination_id)
            ).all()
        return [_record(row) for row in rows]

    def written(self, destination_id: str, refs: Sequence[str]) -> dict[str, tuple[str, bool]]:
        found: dict[str, tuple[str, bool]] = {}
        w = destination_writes.c
        with self._reader.connect() as connection:
            for start in range(0, len(refs), 500):
                chunk = list(refs[start : start + 500])
                rows = connection.execute(
                    select(w.ref, w.content_hash, w.conditional).where(
                        w.destination_id == destination_id, w.ref.in_(chunk)
                    )
                )
                found.update({row.ref: (row.content_hash, row.conditional) for row in rows})
        return found

    def wrote(
        self,
        unit: UnitOfWork,
        delivery_id: str,
        *,
        hashes: Mapping[str, str],
        conditional: Set[str],
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
                        "conditional": ref in conditional,
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
    """The resources stored from a subject (``source = exchange:<id>`` or
    ``onboarding:<id>``), opened, in batches of whole compartments."""

    def __init__(
        self, engine: Engine, *, reader: Engine | None = None, batch_size: int = 2000
    ) -> None:
        self._reader = reader or engine
        self._batch_size = batch_size

    def batches(self, subject: str) -> Iterator[list[dict[str, Any]]]:
        f = fhir_resources.c
        with self._reader.connect() as connection:
            refs = connection.execute(
                select(f.ref, f.patient_id)
                .where(f.source == subject)
                .order_by(f.patient_id.is_not(None), f.patient_id, f.ref)
            ).all()
        batch: list[str] = []
        for n, row in enumerate(refs):
            batch.append(row.ref)
            following = refs[n + 1] if n + 1 < len(refs) else None
            if following is None or (
                following.patient_id != row.patient_id and len(batch) >= self._batch_size
            ):
                yield self._opened(batch)
                batch = []

    def by_refs(self, refs: Sequence[str]) -> list[dict[str, Any]]:
        return self._opened(refs)

    def _opened(self, refs: Sequence[str]) -> list[dict[str, Any]]:
        at = at_rest(self._reader)
        f = fhir_resources.c
        found: list[dict[str, Any]] = []
        with self._reader.connect() as connection:
            for start in range(0, len(refs), 500):
                rows = connection.execute(
                    select(f.ref, f.body).where(f.ref.in_(list(refs[start : start + 500])))
                ).all()
                found += [orjson.loads(at.open(row.body, RESOURCE_BODY, row.ref)) for row in rows]
        order = {ref: n for n, ref in enumerate(refs)}
        return sorted(found, key=lambda r: order.get(f"{r['resourceType']}/{r['id']}", 0))
