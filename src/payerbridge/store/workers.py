"""The workers' heartbeats (``oversight.workers.Heartbeats``), shared through the database.

A beat is an upsert in the caller's unit of work. A claim deletes a dead worker's row in
the caller's unit: on PostgreSQL it first locks the row if it is still stale, skipping it
when another transaction holds it (a second survivor claiming it, the worker itself
beating), so the row stays held, and the worker's next beat waits, until the unit ends;
SQLite's transactions are immediate, one writer at a time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from payerbridge.oversight.model import Heartbeat
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.store.worker_tables import worker_heartbeats
from payerbridge.transactions import UnitOfWork
from payerbridge.types import WorkerId

__all__ = ["SqlWorkerHeartbeats"]

_beats = worker_heartbeats


class SqlWorkerHeartbeats:
    def __init__(self, reader: Engine) -> None:
        self._reader = reader

    def beat(self, unit: UnitOfWork, worker_id: WorkerId, *, version: str) -> None:
        connection = sql_unit(unit).connection
        module = postgresql if connection.dialect.name == "postgresql" else sqlite
        insert = module.insert(_beats).values(
            worker_id=worker_id, version=version, started_at=unit.now, beat_at=unit.now
        )
        connection.execute(
            insert.on_conflict_do_update(
                index_elements=[_beats.c.worker_id],
                set_={"version": insert.excluded.version, "beat_at": insert.excluded.beat_at},
            )
        )

    def all(self) -> list[Heartbeat]:
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(_beats.c.worker_id, _beats.c.version, _beats.c.beat_at)
            ).all()
        return [Heartbeat(WorkerId(row.worker_id), row.version, row.beat_at) for row in rows]

    def claim(self, unit: UnitOfWork, worker_id: WorkerId, *, stale_before: datetime) -> bool:
        connection = sql_unit(unit).connection
        held = connection.execute(
            select(_beats.c.worker_id)
            .where(_beats.c.worker_id == worker_id, _beats.c.beat_at < stale_before)
            .with_for_update(skip_locked=True)
        ).first()
        if held is None:
            return False
        connection.execute(_beats.delete().where(_beats.c.worker_id == worker_id))
        return True
