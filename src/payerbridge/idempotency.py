"""Idempotency-Key on the old payer's operations: a call's claim on its key and the
answer stored for a retry (pure types; ``store.idempotency`` keeps them, ``api.idempotency``
answers with them). The store writes in the caller's unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId

__all__ = ["Claim", "ClaimStatus", "IdempotencyStore", "StoredResponse"]


class ClaimStatus(StrEnum):
    CLAIMED = "claimed"  # ours: do the work, then complete()
    ANSWERED = "answered"  # done before: replay ``response``
    IN_FLIGHT = "in-flight"  # another call holds it right now
    MISMATCH = "mismatch"  # the key was used for a different request


@dataclass(frozen=True)
class StoredResponse:
    status: int
    media_type: str
    body: str


@dataclass(frozen=True)
class Claim:
    status: ClaimStatus
    response: StoredResponse | None = None


class IdempotencyStore(Protocol):
    """The claims and the answers kept for retries (``store.idempotency``)."""

    def claim(
        self,
        unit: UnitOfWork,
        client_id: ClientId,
        key: str,
        *,
        operation: str,
        request_hash: str,
        now: datetime,
        stale_after: timedelta,
    ) -> Claim:
        """The key claimed for this call, or why not (answered, in flight, mismatched)."""
        ...

    def complete(
        self, unit: UnitOfWork, client_id: ClientId, key: str, response: StoredResponse
    ) -> None:
        """Keep the answer in ``unit``, where the caller records the call's audit events."""
        ...

    def release(self, unit: UnitOfWork, client_id: ClientId, key: str) -> None: ...

    def purge(self, unit: UnitOfWork, *, before: datetime) -> int: ...
