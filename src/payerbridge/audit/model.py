"""The audit event and its stored form (pure). The hash chain (``chain.py``) covers these fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["AuditEvent", "StoredEvent"]


@dataclass(frozen=True)
class AuditEvent:
    at: datetime
    actor: str
    action: str  # e.g. "exchange.transition", "member-match", "partner.register"
    entity_type: str
    entity_id: str
    outcome: str  # "success", "failure", or a decision such as "match"
    request_id: str | None = None
    # Internal ids, codes and hashes only: no names, birth dates or member identifiers.
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredEvent:
    """An audit row as stored: its fields (``detail`` as the stored text) and its place
    in the chain."""

    seq: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    outcome: str
    request_id: str | None
    detail: str | None
    leaf_hash: str
    prev_hash: str
    chain_hash: str
