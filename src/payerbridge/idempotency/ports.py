"""Where the claims on Idempotency-Keys and the answers kept for retries are stored. The
store writes in the caller's unit of work."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from payerbridge.idempotency.model import Claim, KeyClaim, StoredResponse
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId

__all__ = ["IdempotencyStore"]


class IdempotencyStore(Protocol):
    """The claims and the answers kept for retries (``store.idempotency``)."""

    def claim(self, unit: UnitOfWork, claim: KeyClaim, *, now: datetime) -> Claim:
        """The key claimed for this call, or why not (answered, in flight, mismatched)."""
        ...

    def complete(
        self, unit: UnitOfWork, client_id: ClientId, key: str, response: StoredResponse
    ) -> None:
        """Keep the answer in ``unit``, where the caller records the call's audit events."""
        ...

    def release(self, unit: UnitOfWork, client_id: ClientId, key: str) -> None: ...

    def purge(self, unit: UnitOfWork, *, before: datetime) -> int: ...
