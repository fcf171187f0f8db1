"""The unit of work: the one way a use case makes several changes commit together.

A use case opens a ``UnitOfWork`` with ``Transactions.begin()`` and hands it to every
store method that writes; the stores' writes run in its transaction, and it commits
when the block ends (or rolls everything back if the block raises). Audit events are
recorded on it, in the order the changes happened, and written last, just before the
commit: the audit chain's head is locked from their insert to the commit (ADR 0007,
ADR 0008), so nothing else may run in between.

Reads take no unit of work: each sees the last commit.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from payerbridge.audit.model import AuditEvent

__all__ = ["Transactions", "UnitOfWork"]


class UnitOfWork(Protocol):
    """One transaction in progress. Stores recognise their own kind (a SQL store takes a
    SQL unit of work) and write through it."""

    def record(self, *events: AuditEvent) -> None:
        """Audit ``events`` in this transaction, after those recorded before them."""
        ...


class Transactions(Protocol):
    def begin(self) -> AbstractContextManager[UnitOfWork]:
        """A new unit of work; committed when the block ends, rolled back if it raises.
        A store's unique key refused raises StoreConflict, a database that does not
        answer StoreUnavailable (at the latest when the block ends)."""
        ...
