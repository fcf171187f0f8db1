"""The plan-year onboardings' tables (new payer, ADR 0019), on ``tables.metadata``."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Table, Text

from payerbridge.store.schema import UtcDateTime, metadata

__all__ = ["onboarding_chunks", "onboarding_members", "onboardings"]

# Plan-year onboardings (new payer): one run per file of members and old payer.
onboardings = Table(
    "onboardings",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("client_id", String(200), nullable=False),
    Column("partner_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("total", Integer, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("error", String(500), nullable=True),
    # An incremental run: what it asked since (``_since``), and what its data reflects
    # (its exports' earliest transactionTime): the since of the next (revision 0045).
    Column("since", UtcDateTime(), nullable=True),
    Column("received_at", UtcDateTime(), nullable=True),
)

# Its members: the MemberBundle sent (dropped when the run ends) and what became of each.
onboarding_members = Table(
    "onboarding_members",
    metadata,
    Column("onboarding_id", String(64), ForeignKey("onboardings.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("member_id", String(64), nullable=False),
    Column("consent_id", String(64), nullable=False),
    Column("bundle", Text, nullable=False),
    Column("result", String(24), nullable=True),
    Column("old_patient", String(64), nullable=True),
    Column("imported", Integer, nullable=True),
    Column("changed", Integer, nullable=True),  # of an incremental run: resources changed
    # The one Patient its records were kept under and how it was chosen, with where its
    # sources' Patients differ (fields and sources, no values), as JSON (ADR 0054).
    Column("member_patient", Text, nullable=True),
)

# Its chunks: each one $bulk-member-match and one export at the old payer; the row is
# the chunk's checkpoint.
onboarding_chunks = Table(
    "onboarding_chunks",
    metadata,
    Column("onboarding_id", String(64), ForeignKey("onboardings.id"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("first_member", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    Column("stage", String(16), nullable=False),
    Column("status_url", String(2000), nullable=True),
    Column("group_id", String(64), nullable=True),
    Column("due_at", UtcDateTime(), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)
