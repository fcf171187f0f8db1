"""The audit chain's reads: an entity's trail, the chain as stored, and the checkpoints
made of it (``audit.ports``). Events are written by one path only,
``store.audit_append.append_events``, from the unit of work that records them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, insert, select

from payerbridge.audit.model import (
    GENESIS,
    Checkpoint,
    MerkleFrontier,
    StoredCheckpoint,
    StoredEvent,
)
from payerbridge.store.audit_append import CHAIN_COLUMNS, EVENT_COLUMNS
from payerbridge.store.tables import audit_checkpoints, audit_events, audit_head, audit_tree_nodes
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork

__all__ = ["SqlAuditChain", "SqlAuditTrail"]


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
        columns = [audit_events.c[name] for name in (*EVENT_COLUMNS, *CHAIN_COLUMNS)]
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
