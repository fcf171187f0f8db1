"""The workers' heartbeats (issue 68, ADR 0049), on ``tables.metadata``."""

from __future__ import annotations

from sqlalchemy import Column, String, Table

from payerbridge.store.schema import UtcDateTime, metadata

__all__ = ["worker_heartbeats"]

# One row per worker id that runs workflows (DBOS's executor id): when it last beat, and
# the platform version it runs. A survivor that takes a dead worker over deletes its row
# under the row's lock; the worker, back with the same id, writes a new one.
worker_heartbeats = Table(
    "worker_heartbeats",
    metadata,
    Column("worker_id", String(100), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("beat_at", UtcDateTime(), nullable=False),
)
