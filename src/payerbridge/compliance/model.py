"""What the rule's clocks keep (pure): where an obligation row stands (ADR 0037). The
rules that decide it are ``obligations.py`` and ``clocks.py``'s; the stores keep it."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Standing"]


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
