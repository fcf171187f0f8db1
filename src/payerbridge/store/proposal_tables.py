"""The partner proposals' table (ADR 0062), on ``tables.metadata``: what a directory
import holds for an operator. An organization's NPI and name, no member data."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Index, String, Table, Text, text

from payerbridge.store.schema import UtcDateTime, metadata

__all__ = ["partner_proposals"]

_PENDING = text("status = 'pending'")
_WHILE_PENDING: dict[str, Any] = {"sqlite_where": _PENDING, "postgresql_where": _PENDING}

# One change a directory import held for an operator's approval: the organization as the
# directory described it (JSON), why it was held (JSON list), the partner's fingerprint
# when proposed (null: none was registered), and how it was settled.
partner_proposals = Table(
    "partner_proposals",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("partner_id", String(64), nullable=False),
    Column("directory", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("organization", Text, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("reasons", Text, nullable=False),
    Column("based_on", String(64), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("decided_at", UtcDateTime(), nullable=True),
    Column("decided_by", String(200), nullable=True),
    Column("note", Text, nullable=True),
    # The newest proposal of a directory for a partner (an import compares with it).
    Index("ix_partner_proposals_partner", "partner_id", "directory", "created_at"),
    # One pending proposal per partner and directory: two imports at once cannot both hold.
    Index("ux_partner_proposals_pending", "partner_id", "directory", unique=True, **_WHILE_PENDING),
    Index("ix_partner_proposals_status", "status", "created_at"),
)
