"""The obligation rows' table (ADR 0037, "Obligation rows and the report"), on
``tables.metadata``: ids and times, no PHI."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Index, String, Table, text

from payerbridge.store.schema import UtcDateTime, metadata

__all__ = ["obligation_clocks"]

_NOT_DONE = text("done_at IS NULL")
_OPEN: dict[str, Any] = {"sqlite_where": _NOT_DONE, "postgresql_where": _NOT_DONE}

# One obligation of one subject (an exchange, a review case, a request answered at once):
# when its clock started, when it is due and when it was done; ``standing`` as last
# written (the report decides it again when it reads), ``reason`` a code, never PHI.
obligation_clocks = Table(
    "obligation_clocks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("obligation", String(64), nullable=False),
    Column("obligation_version", String(64), nullable=False),
    Column("subject_type", String(16), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("partner_id", String(64), nullable=True),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("due_at", UtcDateTime(), nullable=True),
    Column("done_at", UtcDateTime(), nullable=True),
    Column("standing", String(16), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
    # One row per obligation and subject: a second start of it changes nothing.
    Index("ux_obligation_clocks_subject", "subject_id", "obligation", "subject_type", unique=True),
    # The report: the rows started in a window, by obligation.
    Index("ix_obligation_clocks_started", "started_at", "obligation"),
    # The metrics scrape: the rows not done yet, which are few beside all the rows.
    Index("ix_obligation_clocks_open", "obligation", "due_at", **_OPEN),
)
