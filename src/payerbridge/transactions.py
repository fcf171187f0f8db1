"""The unit of work: the one way a use case makes several changes commit together.

A use case opens a ``UnitOfWork`` with ``Transactions.begin()`` and hands it to every
store method that writes; the stores' writes run in its transaction, and it commits
when the block ends (or rolls everything back if the block raises). Audit events are
recorded on it, in the order the changes happened, and written last, just before the
commit: the audit chain's head is locked from their insert to the commit (ADR 0007,
ADR 0008), so nothing else may run in between.

Reads take no unit of work: each sees the last commit.

The unit also carries what a use case's writes are stamped with: ``now``, the instant it
began (read once from the clock its ``Transactions`` was built with), and ``new_id()``.
Stores take times from their caller and never read the clock themselves.

``UnitAuditLog`` is the ``AuditLog`` port on the same units: events that go with no
change (a read disclosed, a decision refused) each in a unit of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from payerbridge.audit.model import AuditEvent
from payerbridge.audit.ports import AuditTrail

__all__ = ["Transactions", "UnitAuditLog", "UnitOfWork"]


class UnitOfWork(Protocol):
    """One transaction in progress. Stores recognise their own kind (a SQL store takes a
    SQL unit of work) and write through it."""

    @property
    def now(self) -> datetime:
        """The instant this unit began, read once: every write of the unit is stamped
        with it."""
        ...

    def new_id(self) -> str:
        """A fresh opaque id (a UUID's text) for a row or event the unit writes."""
        ...

    def record(self, *events: AuditEvent) -> None:
        """Audit ``events`` in this transaction, after those recorded before them."""
        ...


class Transactions(Protocol):
    def begin(self) -> AbstractContextManager[UnitOfWork]:
        """A new unit of work; committed when the block ends, rolled back if it raises.
        A store's unique key refused raises StoreConflict, a database that does not
        answer StoreUnavailable (at the latest when the block ends)."""
        ...


class UnitAuditLog:
    """The ``AuditLog`` port on ``transactions``: each call's events in a unit of work of
    their own, written last as in any unit; an entity's trail read from ``trail``."""

    def __init__(self, transactions: Transactions, trail: AuditTrail) -> None:
        self._transactions = transactions
        self._trail = trail

    def record(self, event: AuditEvent) -> None:
        self.record_many([event])

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        if events:
            with self._transactions.begin() as unit:
                unit.record(*events)

    def for_entity(self, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
        return self._trail.for_entity(entity_type, entity_id)
