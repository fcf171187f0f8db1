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
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from payerbridge.audit.chain import (
    GENESIS,
    MerkleFrontier,
    detail_text,
    link_events,
    stored_leaf_hash,
)
from payerbridge.audit.checkpoints import StoredCheckpoint
from payerbridge.audit.model import AuditEvent, Checkpoint, StoredEvent
from payerbridge.store.dbapi import DialectSql, RowsInsert, insert_rows, sqlite_timestamp
from payerbridge.store.tables import audit_checkpoints, audit_events, audit_head, audit_tree_nodes
from payerbridge.transactions import UnitOfWork

__all__ = ["SqlAuditChain", "SqlAuditTrail", "append_events"]

_FIELDS = ("at", "actor", "action", "entity_type", "entity_id", "outcome", "request_id", "detail")
_CHAIN = ("seq", "leaf_hash", "prev_hash", "chain_hash")


class _AuditSql(DialectSql):
    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        # PostgreSQL: the trigger fills seq, prev_hash and chain_hash.
        self.unlinked: RowsInsert = self.rows_insert(audit_events, (*_FIELDS, "leaf_hash"))
        self.insert_linked = self.insert(audit_events, (*_FIELDS, *_CHAIN))
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


class SqlAuditTrail:
    """The ``AuditTrail`` port: the trail of an entity (events are written by the unit
    of work that records them, through ``append_events``)."""

    def __init__(self, *, reader: Engine) -> None:
        self._reader = reader

    def for_entity(self, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
        """The entity's audit trail, oldest first."""
        query = (
            select(audit_events)
            .where(audit_events.c.entity_type == entity_type, audit_events.c.entity_id == entity_id)
            .order_by(audit_events.c.seq)
        )
        with self._reader.connect() as connection:
            rows = connection.execute(query).all()
        return [
            {
                "id": row.id,
                "seq": row.seq,
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


_BATCH = 5_000


class SqlAuditChain:
    """The ``AuditChain`` port: the chain as stored, read in order, and the checkpoints
    this database has made (a record for the next one; the signed copies the verifier
    trusts live outside the database)."""

    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._reader = reader or engine

    def head(self) -> tuple[int, str]:
        with self._reader.connect() as connection:
            row = connection.execute(select(audit_head.c.seq, audit_head.c.hash)).first()
        return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))

    def events(self, *, after: int = 0, up_to: int | None = None) -> Iterator[StoredEvent]:
        """The stored events with ``after < seq <= up_to`` in sequence order, read in
        batches (memory stays flat however long the chain)."""
        columns = [audit_events.c[name] for name in (*_FIELDS, *_CHAIN)]
        while True:
            query = select(*columns).where(audit_events.c.seq > after)
            if up_to is not None:
                query = query.where(audit_events.c.seq <= up_to)
            query = query.order_by(audit_events.c.seq).limit(_BATCH)
            with self._reader.connect() as connection:
                rows = connection.execute(query).all()
            for row in rows:
                yield StoredEvent(**row._asdict())
            if len(rows) < _BATCH:
                return
            after = rows[-1].seq

    def last_checkpoint(self) -> StoredCheckpoint | None:
        query = select(audit_checkpoints).order_by(audit_checkpoints.c.seq.desc()).limit(1)
        with self._reader.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        return StoredCheckpoint(
            checkpoint=Checkpoint(
                seq=row.seq,
                chain_head=row.chain_head,
                merkle_root=row.merkle_root,
                at=row.at,
                key_id=row.key_id,
                signature=row.signature,
            ),
            frontier=MerkleFrontier(row.seq, list(orjson.loads(row.frontier))),
        )

    def save_checkpoints(self, unit: UnitOfWork, checkpoints: Sequence[StoredCheckpoint]) -> bool:
        """Record ``checkpoints`` in ``unit``: False (nothing recorded) when another
        process has recorded one of them first."""
        # Imported here: the unit of work imports this module for ``append_events``.
        from payerbridge.store.unit_of_work import sql_unit

        rows = [
            {
                "seq": s.checkpoint.seq,
                "at": s.checkpoint.at,
                "chain_head": s.checkpoint.chain_head,
                "merkle_root": s.checkpoint.merkle_root,
                "key_id": s.checkpoint.key_id,
                "signature": s.checkpoint.signature,
                "frontier": orjson.dumps(s.frontier.subtrees).decode(),
            }
            for s in checkpoints
        ]
        connection = sql_unit(unit).connection
        taken = connection.execute(
            select(audit_checkpoints.c.seq).where(
                audit_checkpoints.c.seq.in_([r["seq"] for r in rows])
            )
        ).first()
        if taken is not None:
            return False
        connection.execute(insert(audit_checkpoints), rows)
        nodes = [
            {"level": level, "idx": index, "hash": digest}
            for stored in checkpoints
            for level, index, digest in stored.nodes
        ]
        if nodes:
            connection.execute(insert(audit_tree_nodes), nodes)
        return True
