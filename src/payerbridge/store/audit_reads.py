"""The audit chain read as an auditor reads it: the events about some entities, those a
request caused, a searched and paged selection, each with its place in the chain.
Reads only, on the reader engine: ``store/audit_append.py`` is the one writer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, and_, or_, select

from payerbridge.audit.model import AuditQuery, Checkpoint, StoredEvent
from payerbridge.store.audit_append import CHAIN_COLUMNS, EVENT_COLUMNS
from payerbridge.store.tables import audit_checkpoints, audit_events, audit_tree_nodes

__all__ = ["SqlAuditReader"]

_C = audit_events.c
_COLUMNS = [_C[name] for name in (*EVENT_COLUMNS, *CHAIN_COLUMNS)]


def _events(rows: Sequence[Any]) -> list[StoredEvent]:
    return [StoredEvent(**row._asdict()) for row in rows]


class SqlAuditReader:
    """The ``AuditReader`` port."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def about(self, entities: Sequence[tuple[str, str]]) -> list[StoredEvent]:
        if not entities:
            return []
        # One index range per entity (ix_audit_events_entity).
        matches = [and_(_C.entity_type == kind, _C.entity_id == key) for kind, key in entities]
        query = select(*_COLUMNS).where(or_(*matches)).order_by(_C.seq)
        with self._engine.connect() as connection:
            return _events(connection.execute(query).all())

    def by_request(self, request_id: str, *, actor: str | None, limit: int) -> list[StoredEvent]:
        query = select(*_COLUMNS).where(_C.request_id == request_id)  # ix_audit_events_request
        if actor is not None:
            query = query.where(_C.actor == actor)
        with self._engine.connect() as connection:
            return _events(connection.execute(query.order_by(_C.seq).limit(limit)).all())

    def search(self, query: AuditQuery) -> list[StoredEvent]:
        conditions = []
        if query.entity is not None:  # ix_audit_events_entity, then back along seq
            kind, key = query.entity
            conditions += [_C.entity_type == kind, _C.entity_id == key]
        if query.agent is not None:
            conditions.append(_C.actor == query.agent)
        if query.action is not None:
            conditions.append(_C.action == query.action)
        if query.start is not None:
            conditions.append(_C.at >= query.start)
        if query.end is not None:
            conditions.append(_C.at < query.end)
        if query.before is not None:
            conditions.append(_C.seq < query.before)
        found = select(*_COLUMNS).where(*conditions).order_by(_C.seq.desc()).limit(query.count)
        with self._engine.connect() as connection:
            return _events(connection.execute(found).all())

    def event(self, seq: int) -> StoredEvent | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(*_COLUMNS).where(_C.seq == seq)).first()
        return _events([row])[0] if row is not None else None

    def checkpoint(self, seq: int | None = None) -> Checkpoint | None:
        table = audit_checkpoints.c
        query = select(audit_checkpoints)
        if seq is None:
            query = query.order_by(table.seq.desc()).limit(1)
        else:
            query = query.where(table.seq == seq)
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        return Checkpoint(
            seq=row.seq,
            chain_head=row.chain_head,
            merkle_root=row.merkle_root,
            at=row.at,
            key_id=row.key_id,
            signature=row.signature,
        )

    def leaves(self, start: int, end: int) -> list[str]:
        query = (
            select(_C.leaf_hash).where(_C.seq > start, _C.seq <= end).order_by(_C.seq)
        )  # leaf i is event i + 1
        with self._engine.connect() as connection:
            return list(connection.execute(query).scalars())

    def nodes(self, level: int, start: int, end: int) -> dict[int, str]:
        table = audit_tree_nodes.c
        query = select(table.idx, table.hash).where(
            table.level == level, table.idx >= start, table.idx < end
        )
        with self._engine.connect() as connection:
            return {int(row.idx): str(row.hash) for row in connection.execute(query)}
