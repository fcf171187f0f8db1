"""Provider Access's tables (ADR 0059), on ``tables.metadata``: which provider is
attributed which member for which days, and the members' opt-out choices in the order
they were recorded. Member ids only: no demographics."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, Index, Integer, String, Table

from payerbridge.store.schema import UtcDateTime, metadata

__all__ = ["opt_out_choices", "provider_attributions"]

# One row per attribution: derived from the plan's claims (``basis`` claims, replaced
# whole at each derivation) or loaded from a roster (replaced whole per roster name).
provider_attributions = Table(
    "provider_attributions",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("provider_npi", String(10), nullable=False),
    Column("member_id", String(64), nullable=False),
    Column("start_day", Date, nullable=False),
    Column("end_day", Date, nullable=False),
    Column("basis", String(16), nullable=False),
    Column("roster", String(120), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_provider_attributions_provider", "provider_npi", "end_day"),
    Index("ix_provider_attributions_member", "member_id"),
    Index("ix_provider_attributions_roster", "basis", "roster"),
)

# A member's choices about Provider Access, never changed: an opt-in after an opt-out is
# a new row, so what was in force at any time can be told again.
opt_out_choices = Table(
    "opt_out_choices",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("member_id", String(64), nullable=False),
    Column("choice", String(8), nullable=False),
    Column("scope", String(24), nullable=False),
    Column("provider_npi", String(10), nullable=True),
    Column("reason", String(32), nullable=True),
    Column("effective", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    Index("ix_opt_out_choices_member", "member_id", "seq"),
)
