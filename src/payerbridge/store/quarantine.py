"""The quarantine in the database (``backends.quarantine.Quarantine``): resources held
in the caller's unit of work, listed in the order held."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, Row, func, select

from payerbridge.backends.model import (
    HeldIssue,
    QuarantinedResource,
    QuarantineId,
    SourceId,
    ToHold,
)
from payerbridge.errors import NotFound
from payerbridge.store.at_rest import at_rest
from payerbridge.store.dbapi import DialectSql
from payerbridge.store.sealed_fields import QUARANTINED_BODY
from payerbridge.store.tables import quarantined_resources
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork

__all__ = ["SqlQuarantine"]

_table = quarantined_resources
_LISTED = [c for c in _table.c if c.name != "body"]


class SqlQuarantine:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine

    def hold(self, unit: UnitOfWork, items: Sequence[ToHold]) -> list[QuarantinedResource]:
        sql = sql_unit(unit)
        keys = at_rest(sql)
        rows: list[dict[str, Any]] = []
        for item in items:
            resource_id = item.resource.get("id")
            held_id = sql.new_id()
            rows.append(
                {
                    "id": held_id,
                    "source_id": item.source_id,
                    "mapping_id": item.mapping_id,
                    "mapping_version": item.mapping_version,
                    "resource_type": str(item.resource.get("resourceType", "Resource"))[:64],
                    "resource_id": str(resource_id)[:64] if resource_id is not None else None,
                    "profiles": orjson.dumps(_claimed_profiles(item.resource)).decode(),
                    "issues": orjson.dumps([i.to_json() for i in item.issues]).decode(),
                    "held_at": unit.now,
                    "body": keys.seal(orjson.dumps(item.resource), QUARANTINED_BODY, held_id),
                }
            )
        if not rows:
            return []
        # On the unit's DB-API cursor, as the hot paths write: a unit that already ran
        # cursor() statements (a mapping run's) can still hold what failed.
        dialect = DialectSql.of(sql.dialect)
        cursor = sql.cursor()
        cursor.executemany(
            dialect.insert(_table, list(rows[0])), [dialect.bound(r, {"held_at"}) for r in rows]
        )
        text, parameters = dialect.one_of(
            "SELECT id, seq FROM quarantined_resources WHERE id {one_of}", [r["id"] for r in rows]
        )
        seqs = dict(cursor.execute(text, parameters).fetchall())
        return [
            QuarantinedResource(
                id=QuarantineId(r["id"]),
                seq=int(seqs[r["id"]]),
                source_id=SourceId(r["source_id"]),
                mapping_id=r["mapping_id"],
                mapping_version=r["mapping_version"],
                resource_type=r["resource_type"],
                resource_id=r["resource_id"],
                profiles=_claimed_profiles(item.resource),
                issues=tuple(item.issues),
                held_at=unit.now,
            )
            for r, item in zip(rows, items, strict=True)
        ]

    def list(
        self, *, source: SourceId | None = None, after: int | None = None, limit: int = 50
    ) -> list[QuarantinedResource]:
        query = select(*_LISTED).order_by(_table.c.seq).limit(_page_limit(limit))
        if source is not None:
            query = query.where(_table.c.source_id == source)
        if after is not None:
            query = query.where(_table.c.seq > after)
        with self._reader.connect() as connection:
            return [_resource(row) for row in connection.execute(query)]

    def get(self, quarantine_id: QuarantineId) -> QuarantinedResource:
        with self._reader.connect() as connection:
            row = connection.execute(select(_table).where(_table.c.id == quarantine_id)).first()
        if row is None:
            raise NotFound(f"no quarantined resource {quarantine_id[:64]}")
        body = at_rest(self._reader).open(row.body, QUARANTINED_BODY, row.id)
        return _resource(row, body=orjson.loads(body))

    def count(self, *, source: SourceId | None = None) -> int:
        query = select(func.count()).select_from(_table)
        if source is not None:
            query = query.where(_table.c.source_id == source)
        with self._reader.connect() as connection:
            return int(connection.execute(query).scalar_one())


def _resource(row: Row[Any], body: dict[str, Any] | None = None) -> QuarantinedResource:
    return QuarantinedResource(
        id=QuarantineId(row.id),
        seq=int(row.seq),
        source_id=SourceId(row.source_id),
        mapping_id=row.mapping_id,
        mapping_version=row.mapping_version,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        profiles=tuple(orjson.loads(row.profiles)),
        issues=tuple(HeldIssue(**issue) for issue in orjson.loads(row.issues)),
        held_at=row.held_at,
        resource=body,
    )


_LIST_LIMIT = 1000


def _claimed_profiles(resource: Mapping[str, Any]) -> tuple[str, ...]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, Mapping) else None
    return tuple(str(p) for p in profiles) if isinstance(profiles, list) else ()


def _page_limit(limit: int) -> int:
    """``limit`` within 1..1000 (a listing's page)."""
    return max(1, min(limit, _LIST_LIMIT))
