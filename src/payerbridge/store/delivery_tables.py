"""The deliveries of received records to the plan's FHIR server (ADR 0053), on
``tables.metadata``."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text

from payerbridge.store.schema import UtcDateTime, metadata

__all__ = ["destination_deliveries", "destination_writes"]

# One row per exchange run (its first, or a replay) or onboarding, and destination: its
# state, attempts, when it is next due, and how it ended (a refusal's reason code, the
# destination's issue codes and the hash of its answer: never its text). Ids and codes.
destination_deliveries = Table(
    "destination_deliveries",
    metadata,
    Column("id", String(200), primary_key=True),  # <subject>:<destination>:<run>
    Column("subject", String(80), nullable=False),  # exchange:<id>, onboarding:<id>
    Column("destination_id", String(40), nullable=False),
    Column("run", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_at", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("ended_at", UtcDateTime(), nullable=True),
    Column("reason_code", String(64), nullable=True),
    Column("issue_codes", String(1400), nullable=True),  # JSON list
    Column("outcome_hash", String(64), nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("written", Text, nullable=False),  # JSON: type → resources written
    Column("unchanged", Integer, nullable=False),
    Index("ix_destination_deliveries_subject", "subject"),
    Index("ix_destination_deliveries_due", "state", "next_at"),
)

# What each destination holds from us: per our ref, the content hash of what we last
# wrote there (``delivery.bundle.content_hash``), so a delivery sends only what changed.
destination_writes = Table(
    "destination_writes",
    metadata,
    Column("destination_id", String(40), primary_key=True),
    Column("ref", String(200), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    # Written by a conditional update on its identifier (later Bundles name it so), or by
    # our id: a flag, not the URL, which carries the identifier.
    Column("conditional", Boolean, nullable=False),
    Column("delivery_id", String(200), nullable=False),
    Column("written_at", UtcDateTime(), nullable=False),
)
