"""Idempotency-Key on the old payer's operations: a call's claim on its key and the
answer stored for a retry (pure types; ``store.idempotency`` keeps them,
``api.idempotency`` answers with them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from payerbridge.types import ClientId

__all__ = ["Claim", "ClaimStatus", "KeyClaim", "StoredResponse"]


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


@dataclass(frozen=True)
class KeyClaim:
    """A call's claim on its Idempotency-Key: whose key, for which operation and request
    (its digest), and how long a claim in flight is held before it is taken as dead."""

    client_id: ClientId
    key: str
    operation: str
    request_hash: str
    stale_after: timedelta
