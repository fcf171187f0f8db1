"""The audit room's ports: the one writer of audit events, an entity's trail, the chain
as stored, and where signed checkpoints go.

The room sits below ``transactions``, so a port that writes in a unit of work names the
unit's type as a parameter (``Unit``) rather than importing ``UnitOfWork``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, TypeVar

from payerbridge.audit.model import (
    AuditEvent,
    AuditQuery,
    Checkpoint,
    StoredCheckpoint,
    StoredEvent,
)

__all__ = ["AuditChain", "AuditLog", "AuditReader", "AuditTrail", "CheckpointSink", "Unit"]

# The unit of work a port's writes take (``transactions.UnitOfWork``, above this room).
Unit = TypeVar("Unit", contravariant=True)


class AuditTrail(Protocol):
    """An entity's audit events as stored, oldest first."""

    def for_entity(self, entity_type: str, entity_id: str) -> list[dict[str, Any]]: ...


class AuditReader(Protocol):
    """The stored events an auditor reads, and what proofs are built from
    (``store/audit_reads.py``)."""

    def about(self, entities: Sequence[tuple[str, str]]) -> list[StoredEvent]:
        """The events about any of ``entities`` (type, id), in the chain's order."""
        ...

    def by_request(self, request_id: str, *, actor: str | None, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events ``request_id`` caused (``actor``'s only, unless None)."""
        ...

    def event(self, seq: int) -> StoredEvent | None: ...

    def search(self, query: AuditQuery) -> list[StoredEvent]:
        """Up to ``query.count`` events, newest first, before ``query.before``."""
        ...

    def checkpoint(self, seq: int | None = None) -> Checkpoint | None:
        """The recorded checkpoint at ``seq``; None: the newest."""
        ...

    def leaves(self, start: int, end: int) -> list[str]:
        """The leaf hashes of leaves ``[start, end)`` (leaf ``i`` is event ``i + 1``)."""
        ...

    def nodes(self, level: int, start: int, end: int) -> dict[int, str]:
        """The kept subtree roots at ``level`` with index in ``[start, end)``."""
        ...


class AuditLog(AuditTrail, Protocol):
    """Appends audit events that go with no change, each call's in a unit of work of its
    own (a change's events are recorded on the change's unit instead), and reads an
    entity's trail."""

    def record(self, event: AuditEvent) -> None: ...

    def record_many(self, events: Sequence[AuditEvent]) -> None: ...


class AuditChain(Protocol[Unit]):
    """The chain as stored, and the record of the checkpoints made of it."""

    def head(self) -> tuple[int, str]: ...

    def events(self, *, after: int = 0, up_to: int | None = None) -> Iterator[StoredEvent]: ...

    def last_checkpoint(self) -> StoredCheckpoint | None: ...

    def save_checkpoints(self, unit: Unit, checkpoints: Sequence[StoredCheckpoint]) -> bool:
        """Record ``checkpoints`` in ``unit``: False (nothing recorded) when another
        process has recorded one of them first."""
        ...


class CheckpointSink(Protocol):
    """Where signed checkpoints are kept outside the database (a file, a URL)."""

    def publish(self, checkpoints: Sequence[Checkpoint]) -> None: ...
