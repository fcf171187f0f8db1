"""The data lifecycle's table (ADR 0038), on ``tables.metadata``."""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table, Text

from payerbridge.store.schema import UtcDateTime, metadata

__all__ = ["legal_holds"]

# A member whose records must be kept (litigation, an investigation): while a hold is
# not released, erasure is refused (ADR 0038).
legal_holds = Table(
    "legal_holds",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("member_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("placed_by", String(200), nullable=False),
    Column("placed_at", UtcDateTime(), nullable=False),
    Column("released_by", String(200), nullable=True),
    Column("released_at", UtcDateTime(), nullable=True),
    # The principal that placed it, who may release it besides counsel (ADR 0046).
    Column("placed_by_principal", String(200), nullable=True),
    Index("ix_legal_holds_member", "member_id", "released_at"),
)
