"""Paged ``$everything`` snapshots in the database: the first page's decision and the
ordered references every next link pages through. Saved and purged in the caller's unit
of work."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, delete, insert, select

from payerbridge.consent.model import ConsentPolicy
from payerbridge.disclosure.model import EverythingQuery, PageEntry, Snapshot
from payerbridge.store.at_rest import at_rest
from payerbridge.store.dbapi import DialectSql, raw_cursor
from payerbridge.store.members import opened_row
from payerbridge.store.tables import disclosure_snapshot_refs, disclosure_snapshots, fhir_resources
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork

__all__ = ["SqlDisclosureSnapshots"]

_BATCH = 5000


_PAGE = (
    f"SELECT r.seq, r.mode, r.version_id, r.ref, f.body, f.version_id, f.last_updated "
    f"FROM {disclosure_snapshot_refs.name} r "
    f"LEFT JOIN {fhir_resources.name} f ON f.ref = r.ref "
    "WHERE r.snapshot_id = :snapshot AND r.seq > :after ORDER BY r.seq LIMIT :count"
)


class SqlDisclosureSnapshots:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine

    def save(self, unit: UnitOfWork, snapshot: Snapshot, entries: Iterable[PageEntry]) -> None:
        connection = sql_unit(unit).connection
        connection.execute(
            insert(disclosure_snapshots).values(
                id=snapshot.id,
                client_id=snapshot.client_id,
                patient_id=snapshot.patient_id,
                policy=snapshot.policy.value,
                created_at=snapshot.created_at,
                expires_at=snapshot.expires_at,
                total=snapshot.total,
                query=orjson.dumps({**snapshot.query.to_json(), "path": snapshot.path}).decode(),
                withheld=orjson.dumps(sorted(snapshot.withheld)).decode(),
                judged_by=snapshot.judged_by,
            )
        )
        batch: list[dict[str, Any]] = []
        for seq, entry in enumerate(entries, start=1):
            batch.append(
                {
                    "snapshot_id": snapshot.id,
                    "seq": seq,
                    "ref": entry.ref,
                    "mode": entry.mode,
                    "version_id": entry.version,
                }
            )
            if len(batch) == _BATCH:
                connection.execute(insert(disclosure_snapshot_refs), batch)
                batch = []
        if batch:
            connection.execute(insert(disclosure_snapshot_refs), batch)

    def get(self, snapshot_id: str) -> Snapshot | None:
        with self._reader.connect() as connection:
            row = connection.execute(
                select(disclosure_snapshots).where(disclosure_snapshots.c.id == snapshot_id)
            ).first()
        if row is None:
            return None
        query = orjson.loads(row.query)
        return Snapshot(
            id=row.id,
            client_id=row.client_id,
            patient_id=row.patient_id,
            policy=ConsentPolicy(row.policy),
            created_at=row.created_at,
            expires_at=row.expires_at,
            total=row.total,
            query=EverythingQuery.from_json(query),
            withheld=frozenset(orjson.loads(row.withheld)),
            path=str(query.get("path", "")),
            judged_by=row.judged_by,
        )

    def page(
        self, snapshot_id: str, *, after: int, count: int
    ) -> list[tuple[int, str, dict[str, Any] | None, bool]]:
        # DB-API SQL: as a SQLAlchemy statement, its rows' processing cost more than the
        # database (a page of a thousand records).
        sql = DialectSql.of(self._engine.dialect)
        keys = at_rest(self._engine)
        with raw_cursor(self._engine) as cursor:  # the writer's: see raw_cursor
            cursor.execute(
                sql.sql(_PAGE), {"snapshot": snapshot_id, "after": after, "count": count}
            )
            rows = cursor.fetchall()
        return [
            (
                seq,
                mode,
                None if body is None else opened_row(sql, keys, (ref, body, version_id, stamp)),
                judged is not None and judged == version_id,
            )
            for seq, mode, judged, ref, body, version_id, stamp in rows
        ]

    def purge(self, unit: UnitOfWork, *, now: datetime) -> int:
        connection = sql_unit(unit).connection
        expired = select(disclosure_snapshots.c.id).where(disclosure_snapshots.c.expires_at < now)
        connection.execute(
            delete(disclosure_snapshot_refs).where(
                disclosure_snapshot_refs.c.snapshot_id.in_(expired)
            )
        )
        result = connection.execute(
            delete(disclosure_snapshots).where(disclosure_snapshots.c.expires_at < now)
        )
        return result.rowcount or 0
