"""The audit chain read as an auditor reads it: the events about some entities, those a
request caused, a searched and paged selection, each with its place in the chain.
Reads only, on the reader engine: ``store/audit.py`` is the one writer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, and_, or_, select

from payerbridge.audit.model import StoredEvent
from payerbridge.store.tables import audit_events

__all__ = ["SqlAuditReader"]

_C = audit_events.c
_COLUMNS = [
    _C[name]
    for name in (
        "seq",
        "at",
        "actor",
        "action",
        "entity_type",
        "entity_id",
        "outcome",
        "request_id",
        "detail",
        "leaf_hash",
        "prev_hash",
        "chain_hash",
    )
]


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
