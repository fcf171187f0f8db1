"""The audit room's ports: the one writer of audit events, the chain as stored, and
where signed checkpoints go."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from payerbridge.audit.checkpoints import Checkpoint, StoredCheckpoint
from payerbridge.audit.model import AuditEvent, StoredEvent

__all__ = ["AuditChain", "AuditLog", "CheckpointSink"]


class AuditLog(Protocol):
    """Appends audit events (each in a transaction of its own; stores that change
    something append the events of that change in its own transaction)."""

    def record(self, event: AuditEvent) -> None: ...

    def record_many(self, events: Sequence[AuditEvent]) -> None: ...

    def for_entity(self, entity_type: str, entity_id: str) -> list[dict[str, Any]]: ...


class AuditChain(Protocol):
    """The chain as stored, and the record of the checkpoints made of it."""

    def head(self) -> tuple[int, str]: ...

    def events(self, *, after: int = 0, up_to: int | None = None) -> Iterator[StoredEvent]: ...

    def last_checkpoint(self) -> StoredCheckpoint | None: ...

    def save_checkpoints(
        self,
        checkpoints: Sequence[StoredCheckpoint],
        publish: Callable[[Sequence[Checkpoint]], None],
    ) -> bool: ...


class CheckpointSink(Protocol):
    """Where signed checkpoints are kept outside the database (a file, a URL)."""

    def publish(self, checkpoints: Sequence[Checkpoint]) -> None: ...
