"""The append-only, hash-chained audit table: the one path that writes audit events.

``append_events`` is the only insert into ``audit_events``; the unit of work calls it on
the cursor of the transaction that makes the change the events record, with the events
recorded on it (``unit.record``), the one way events are recorded. Each event is
written with its RFC 6962 leaf hash and linked into one gap-free chain (ADR 0007):

- on PostgreSQL a trigger gives each row its ``seq`` and chain hash from the
  ``audit_head`` row, which it locks until the transaction ends: writers in every
  process take turns, and the INSERT stays one statement in a pipelined transaction;
- on SQLite writers already take turns (one write transaction at a time), so the chain
  is linked here from the head read in the same transaction, and triggers refuse a
  row out of sequence and move the head.

On both, triggers refuse UPDATE and DELETE. Events go last in a transaction (the head
lock is held from the insert to the commit) and are never written in autocommit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from payerbridge.audit.model import AuditEvent, detail_text, link_events, stored_leaf_hash
from payerbridge.store.dbapi import DialectSql, RowsInsert, insert_rows, sqlite_timestamp
from payerbridge.store.tables import audit_events, audit_head

__all__ = ["CHAIN_COLUMNS", "EVENT_COLUMNS", "append_events"]

EVENT_COLUMNS = (
    "at",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "outcome",
    "request_id",
    "detail",
)
CHAIN_COLUMNS = ("seq", "leaf_hash", "prev_hash", "chain_hash")


class _AuditSql(DialectSql):
    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        # PostgreSQL: the trigger fills seq, prev_hash and chain_hash.
        self.unlinked: RowsInsert = self.rows_insert(audit_events, (*EVENT_COLUMNS, "leaf_hash"))
        self.insert_linked = self.insert(audit_events, (*EVENT_COLUMNS, *CHAIN_COLUMNS))
        self.head = self.sql(f"SELECT seq, hash FROM {audit_head.name} WHERE id = 1")


_SQLITE = _AuditSql(sqlite.dialect())
_POSTGRES = _AuditSql(postgresql.psycopg.dialect())  # type: ignore[no-untyped-call]  # SQLAlchemy's dialect classes are untyped


def _fields(event: AuditEvent, at: Any, detail: str | None) -> dict[str, Any]:
    return {
        "at": at,
        "actor": event.actor,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "detail": detail,
    }


def _stored_details(events: Sequence[AuditEvent], trace_id: str | None) -> list[str | None]:
    """Each event's detail as stored and hashed, with ``trace_id`` added where the event
    names none (serialised once here: the row and the leaf hash share the text)."""
    if trace_id is None:
        return [detail_text(e.detail) for e in events]
    return [
        detail_text(e.detail if "trace_id" in e.detail else {**e.detail, "trace_id": trace_id})
        for e in events
    ]


def append_events(
    cursor: Any, events: Sequence[AuditEvent], *, trace_id: str | None = None
) -> None:
    """Append ``events``, in order, inside the transaction of ``cursor`` (a DB-API cursor
    of the writing engine; see the module docstring for what each store does), each
    with ``trace_id`` (the current trace's, if any) in its detail: the audit trail leads
    to the trace, and the trace to the request."""
    if not events:
        return
    details = _stored_details(events, trace_id)
    if isinstance(cursor, sqlite3.Cursor):
        _append_linked(cursor, events, details)
        return
    insert_rows(
        cursor,
        (
            _POSTGRES.unlinked,
            [
                {**_fields(e, e.at, d), "leaf_hash": stored_leaf_hash(e, d)}
                for e, d in zip(events, details, strict=True)
            ],
        ),
    )


def _append_linked(
    cursor: sqlite3.Cursor, events: Sequence[AuditEvent], details: Sequence[str | None]
) -> None:
    if not cursor.connection.in_transaction:
        # The head read and the inserts must be one transaction, or two writers fork it.
        raise RuntimeError("audit events are written inside the change's transaction")
    head_seq, head_hash = cursor.execute(_SQLITE.head).fetchone()
    chained = link_events(
        head_seq, head_hash, (stored_leaf_hash(e, d) for e, d in zip(events, details, strict=True))
    )
    cursor.executemany(
        _SQLITE.insert_linked,
        [
            {
                **_fields(e, sqlite_timestamp(e.at), d),
                "seq": c.seq,
                "leaf_hash": c.leaf_hash,
                "prev_hash": c.prev_hash,
                "chain_hash": c.chain_hash,
            }
            for e, d, c in zip(events, details, chained, strict=True)
        ],
    )
