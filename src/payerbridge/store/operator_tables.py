"""The operator console's tables (ADR 0035), on ``tables.metadata``: its accounts with
their argon2id hashes (never a password), and their sessions, kept as the SHA-256 of
the token only the browser holds."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table, Text, false

from payerbridge.store.schema import UtcDateTime, metadata

__all__ = ["operator_sessions", "operators", "unmask_grants"]


operators = Table(
    "operators",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("password_changed_at", UtcDateTime(), nullable=False),
    Column("disabled_at", UtcDateTime(), nullable=True),
)

# Their sessions: the SHA-256 of the token only the browser holds.
operator_sessions = Table(
    "operator_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("operator", String(64), ForeignKey("operators.name"), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime(), nullable=True),
    Index("ix_operator_sessions_operator", "operator", "ended_at"),
)

# Break-glass (ADR 0038): an operator's grant to see the identifiers the console masks,
# with why and until when. Each page shown under it is audited.
unmask_grants = Table(
    "unmask_grants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("operator", String(64), ForeignKey("operators.name"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("granted_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    # Where the plan asks a second person (ADR 0046): the grant is in force only once
    # another operator approved it, for ``minutes`` from then.
    Column("needs_approval", Boolean(), nullable=False, server_default=false()),
    Column("minutes", Integer(), nullable=True),
    Column("approved_by", String(64), nullable=True),
    Column("approved_at", UtcDateTime(), nullable=True),
    Index("ix_unmask_grants_operator", "operator", "expires_at"),
)
