"""The audit event (pure). The tamper-evident chain of the roadmap hashes these same fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["AuditEvent"]


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
