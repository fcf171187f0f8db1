"""The counters of refused calls (issue 67, ADR 0045), on ``tables.metadata``."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table

from payerbridge.store.schema import UtcDateTime, metadata

__all__ = ["audit_refusal_windows"]

# One row per client, operation, reason and window of refused calls: how many, and when
# its audit event was written (``closed_at``; NULL while the window counts). Ids and
# reason codes only: nothing of the requests.
audit_refusal_windows = Table(
    "audit_refusal_windows",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("client_id", String(200), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("window_start", UtcDateTime(), nullable=False),
    Column("window_end", UtcDateTime(), nullable=False),
    Column("count", Integer, nullable=False),
    Column("closed_at", UtcDateTime(), nullable=True),
    Index(
        "uq_audit_refusal_windows_window",
        "client_id",
        "operation",
        "reason",
        "window_start",
        unique=True,
    ),
    # The windows still counting, by when they end: what a closer looks for.
    Index("ix_audit_refusal_windows_open", "closed_at", "window_end"),
)
