"""What the compliance room's stores keep (pure): where an obligation row stands (ADR
0037; the rules that decide it are ``obligations.py`` and ``clocks.py``'s) and a legal
hold on a member's data (ADR 0038; who may place and release one is ``lifecycle.py``'s)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["Hold", "Standing"]


class Standing(StrEnum):
    """Where an obligation stands: done in time or late, or not done yet."""

    MET = "met"
    MISSED = "missed"
    AT_RISK = "at_risk"
    PENDING = "pending"
    NOT_STARTED = "not_started"  # an event it counts from has not happened
    # No longer owed: the member's opt-in was revoked, or the member left (erased), while
    # it ran. Neither met nor missed; the row's reason says which (ADR 0037, amendment).
    CLOSED = "closed"


@dataclass(frozen=True)
class Hold:
    id: str
    member_id: str
    reason: str
    placed_by: str
    placed_at: datetime
    released_by: str | None = None
    released_at: datetime | None = None
    # Who may release it besides counsel: the principal that placed it (None for a hold
    # placed before ADR 0046: counsel alone).
    placed_by_principal: str | None = None
