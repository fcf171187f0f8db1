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
from types import TracebackType
from typing import Any, Protocol, Self

from payerbridge.audit.model import AuditEvent
from payerbridge.audit.ports import AuditTrail

__all__ = ["RoomUnit", "Transactions", "UnitAuditLog", "UnitOfWork"]


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


class RoomUnit:
    """What every room's unit of work (ADR 0051) shares: the transaction.

    A room's unit is a dataclass of the ports its use cases take (its stores, and what is
    not a store: a client, a policy, who we are), built fresh per use case from the
    platform (``platform.units.<room>()``). ``with uow:`` begins one transaction, committed
    when the block ends and rolled back if it raises; a unit may be entered again after.
    Inside, ``uow`` is itself a ``UnitOfWork`` (``now``, ``new_id()``, ``record()``), the
    one the room's stores write in; outside, the stores read the last commit.

    A subclass binds stores that hold their unit (``store.within(unit)``) in ``_bind``
    and lets them go in ``_unbind``."""

    transactions: Transactions
    _begun: AbstractContextManager[UnitOfWork] | None = None
    _transaction: UnitOfWork | None = None

    def __enter__(self) -> Self:
        if self._begun is not None:
            raise RuntimeError(f"this {type(self).__name__} is already in a transaction")
        begun = self.transactions.begin()
        transaction = begun.__enter__()
        self._begun, self._transaction = begun, transaction
        self._bind(transaction)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        begun = self._begun
        self._begun = self._transaction = None
        self._unbind()
        if begun is not None:
            begun.__exit__(kind, error, traceback)

    def _bind(self, transaction: UnitOfWork) -> None:
        """Bind the stores that hold their unit to ``transaction``."""

    def _unbind(self) -> None:
        """Let the bound stores go: outside a transaction they read the last commit."""

    @property
    def transaction(self) -> UnitOfWork:
        """The transaction in progress (RuntimeError outside ``with uow:``): the store
        adapters unwrap it."""
        if self._transaction is None:
            raise RuntimeError("a write outside `with uow:`: begin the unit of work first")
        return self._transaction

    @property
    def now(self) -> datetime:
        """The instant the transaction in progress began."""
        return self.transaction.now

    def new_id(self) -> str:
        """A fresh id, the transaction's."""
        return self.transaction.new_id()

    def record(self, *events: AuditEvent) -> None:
        """Audit ``events`` in the transaction in progress."""
        self.transaction.record(*events)
