"""Standing pulls (pure): a member's data asked again of one old payer, quarterly while
coverage is concurrent or run-off after it ended, each pull an exchange asked ``since``
the last successful one's data was received (issue 54, ADR 0040)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from payerbridge.types import ClientId, ExchangeId, PartnerId

__all__ = [
    "QUARTER",
    "RUN_OFF_EVERY",
    "PullKind",
    "PullSchedule",
    "PullStatus",
    "first_due",
    "next_due",
    "pull_key",
]

# "At least quarterly": a quarter is at most 92 days, so every 91 is always in time.
QUARTER = timedelta(days=91)
# Run-off: asked again every month from coverage end until the opt-in's period ends.
RUN_OFF_EVERY = timedelta(days=30)


class PullKind(StrEnum):
    QUARTERLY = "quarterly"  # while coverage is concurrent
    RUN_OFF = "run-off"  # from coverage end until the opt-in's period ends


class PullStatus(StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"


@dataclass(frozen=True)
class PullSchedule:
    """A standing pull as stored (ids and times; its request is kept apart, sealed)."""

    id: str
    kind: PullKind
    status: PullStatus
    partner_id: PartnerId
    client_id: ClientId
    consent_id: str
    member_key: str | None
    source_exchange_id: ExchangeId
    last_exchange_id: ExchangeId | None
    last_received_at: datetime | None
    next_due_at: datetime | None
    coverage_end: datetime | None
    pulls: int
    stop_reason: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


def first_due(kind: PullKind, received_at: datetime, coverage_end: datetime | None) -> datetime:
    """The first pull after the exchange a schedule starts from: a quarter after its data
    was received, or (run-off) when coverage ended, if that is later than it."""
    if kind is PullKind.QUARTERLY:
        return received_at + QUARTER
    assert coverage_end is not None
    return max(coverage_end, received_at)


def next_due(kind: PullKind, started_at: datetime) -> datetime:
    """The pull after one started at ``started_at``."""
    return started_at + (QUARTER if kind is PullKind.QUARTERLY else RUN_OFF_EVERY)


def pull_key(schedule_id: str, number: int) -> str:
    """The Idempotency-Key of a schedule's ``number``-th pull: a step run again after a
    crash finds the exchange it submitted rather than submitting another."""
    return f"pull:{schedule_id}:{number}"
