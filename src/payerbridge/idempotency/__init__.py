"""Idempotency-Key on the old payer's operations: a call's claim on its key and the
answer stored for a retry (``model``), and where they are kept (``ports``)."""

from payerbridge.idempotency.model import Claim, ClaimStatus, StoredResponse
from payerbridge.idempotency.ports import IdempotencyStore

__all__ = ["Claim", "ClaimStatus", "IdempotencyStore", "StoredResponse"]
