"""The standing pulls' table (issue 54, ADR 0040), on ``tables.metadata``."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text
from sqlalchemy import false as sa_false

from payerbridge.store.schema import UtcDateTime, metadata

__all__ = ["pull_schedules"]

# A standing pull of one member's data at one old payer: the first request, then
# quarterly while coverage is concurrent and run-off from its end until the opt-in's
# period ends. Each pull after the first is an exchange asked ``since`` the last
# successful one's data was received.
pull_schedules = Table(
    "pull_schedules",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # first | quarterly | run-off
    Column("status", String(16), nullable=False),  # active | stopped
    Column("partner_id", String(64), nullable=False),
    Column("client_id", String(200), nullable=False),
    Column("consent_id", String(64), nullable=False),
    Column("member_key", String(64), nullable=True),  # whom the data is held for (hashed)
    # The request each pull is sent with (demographics and cards), sealed (ADR 0039); cut
    # (NULL) when the schedule stops.
    Column("request", Text, nullable=True),
    Column("source_exchange_id", String(64), nullable=True),  # None: made for the first
    Column("last_exchange_id", String(64), nullable=True),
    Column("last_received_at", UtcDateTime(), nullable=True),  # the last successful pull's
    Column("next_due_at", UtcDateTime(), nullable=True),
    Column("coverage_end", UtcDateTime(), nullable=True),  # at the old payer: when it ends
    Column("pulls", Integer, nullable=False, default=0, server_default="0"),
    Column("stop_reason", String(64), nullable=True),
    # A pull was started and waits to be looked at: its data moves the schedule on to the
    # next period, an outage has it tried again, an answer of no member stops it.
    Column("awaiting_pull", Boolean, nullable=False, default=False, server_default=sa_false()),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_pull_schedules_due", "status", "next_due_at"),
)
