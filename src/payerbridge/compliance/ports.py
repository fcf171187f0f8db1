"""The compliance room's ports: what its stores need of the rules and of the exchanges'
kept requests, declared here so that a store reads them without running the rules; and
the data lifecycle's store the room's unit carries (``compliance.unit``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from payerbridge.compliance.model import Hold
from payerbridge.transactions import UnitOfWork

__all__ = ["KeptRequests", "LifecycleStore", "ObligationTerms"]


class ObligationTerms(Protocol):
    """The obligations file in force, as the rows' reader needs it to show the requests
    answered at once (``obligations.ObligationSet``)."""

    @property
    def version(self) -> str: ...

    def due(self, obligation_id: str, events: Mapping[str, datetime]) -> datetime | None:
        """When the deadline ``obligation_id`` ends, given when ``events`` happened."""
        ...


class KeptRequests(Protocol):
    """What the data lifecycle purges and erases of an exchange's kept request (ADR
    0038): the exchange room decides what a request is cut to and whom it is about
    (``exchange.requests.KEPT_REQUESTS``)."""

    def minimised(self, document: dict[str, Any], *, keep_member: bool = True) -> dict[str, Any]:
        """``document`` cut to what the exchange's audit trail needs (the member's id
        too unless ``keep_member`` is False: the member was erased)."""
        ...

    def is_erased(self, document: dict[str, Any]) -> bool:
        """Whether ``document`` was cut with its member's id already (an erasure)."""
        ...

    def member_id(self, document: dict[str, Any]) -> str | None:
        """Our member id in a kept request, whole or minimised (None once erased)."""
        ...

    def member_key(self, client_id: str, member_id: str) -> str:
        """The key the client's member's exchanges and received data are held under."""
        ...


class LifecycleStore(Protocol):
    """Legal holds, the purge and a member's erasure (ADR 0038)."""

    def holds(self, unit: UnitOfWork, member_id: str) -> list[Hold]:
        """Every hold on ``member_id``, released ones too, oldest first."""
        ...

    def hold(self, unit: UnitOfWork, hold_id: str) -> Hold | None: ...

    def add_hold(self, unit: UnitOfWork, hold: Hold) -> None: ...

    def release_hold(self, unit: UnitOfWork, hold_id: str, *, by: str) -> Hold:
        """The hold ``hold_id`` released now (NotFound, or Conflict if it already was)."""
        ...

    def purge_payloads(self, unit: UnitOfWork, *, ended_before: datetime) -> list[str]:
        """Drop the raw payloads of exchanges whose data was stored (or that failed)
        before ``ended_before``; the exchange ids."""
        ...

    def minimise_requests(
        self, unit: UnitOfWork, *, ended_before: datetime, limit: int
    ) -> list[str]:
        """Cut the requests of exchanges that ended before ``ended_before`` to what the
        audit needs; the exchange ids (at most ``limit``)."""
        ...

    def forget_review_requests(self, unit: UnitOfWork, *, decided_before: datetime) -> list[str]:
        """Drop the request records of review cases decided before ``decided_before``."""
        ...

    def purge_source_files(self, unit: UnitOfWork, *, mapped_before: datetime) -> list[str]:
        """Drop the bodies of backend files last mapped before ``mapped_before`` (their
        digests and reports stay); the file ids."""
        ...

    def erase_member(self, unit: UnitOfWork, member_id: str) -> dict[str, int]:
        """Remove ``member_id``'s PHI from every table: rows removed or cut, by table."""
        ...

    def compact(self, tables: Iterable[str]) -> None:
        """After an erasure committed: let no copy of what was removed from ``tables``
        stay in the database's files (SQLite's write-ahead log; PostgreSQL's dead rows)."""
        ...
