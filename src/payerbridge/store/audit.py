"""The append-only audit table: the code that writes audit events.

One exception, for speed: ``store.identity_sql.SqlMatchWrites`` writes the same rows with its
own SQL on the raw cursor of a ``$member-match``'s one transaction. Keep the two in step
(the roadmap's hash chain must cover both)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select

from payerbridge.audit.model import AuditEvent
from payerbridge.store.tables import audit_events

__all__ = ["SqlAuditLog", "append_audit", "append_audits"]


_INSERT = audit_events.insert()  # built once: SQLAlchemy then compiles it once


def append_audit(connection: Connection, event: AuditEvent) -> None:
    """Write the event inside the caller's transaction, so it commits with the change it records."""
    append_audits(connection, [event])


def append_audits(connection: Connection, events: Sequence[AuditEvent]) -> None:
    """Several events, in one statement, inside the caller's transaction."""
    connection.execute(
        _INSERT,
        [
            {
                "at": event.at,
                "actor": event.actor,
                "action": event.action,
                "entity_type": event.entity_type,
                "entity_id": event.entity_id,
                "outcome": event.outcome,
                "request_id": event.request_id,
                "detail": orjson.dumps(event.detail).decode() if event.detail else None,
            }
            for event in events
        ],
    )


class SqlAuditLog:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine  # reads never take SQLite's write lock

    def record(self, event: AuditEvent) -> None:
        self.record_many([event])

    def record_with(self, event: AuditEvent) -> Callable[[Connection], None]:
        """A transaction part that appends the event with the caller's change."""
        return lambda connection: append_audit(connection, event)

    def record_many(self, events: list[AuditEvent]) -> None:
        """Append the events in one transaction."""
        if not events:
            return
        with self._engine.begin() as connection:
            append_audits(connection, events)

    def for_entity(self, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
        """The entity's audit trail, oldest first."""
        query = (
            select(audit_events)
            .where(audit_events.c.entity_type == entity_type, audit_events.c.entity_id == entity_id)
            .order_by(audit_events.c.id)
        )
        with self._reader.connect() as connection:
            rows = connection.execute(query).all()
        return [
            {
                "id": row.id,
                "at": row.at,
                "actor": row.actor,
                "action": row.action,
                "entity_type": row.entity_type,
                "entity_id": row.entity_id,
                "outcome": row.outcome,
                "request_id": row.request_id,
                "detail": orjson.loads(row.detail) if row.detail else {},
            }
            for row in rows
        ]
