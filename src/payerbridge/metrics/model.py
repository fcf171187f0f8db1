"""What the database says about the platform now, as read (pure): the counts and
progress a store adapter reads in a few aggregated queries (``DatabaseReadings``), and
the bounds it counts by. ``readings.take_snapshot`` adds the partners' state and what
the clock makes of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from payerbridge.exchange.model import STOPPED_STATES, ExchangeState

__all__ = [
    "PULL_OVERDUE_AFTER",
    "PULL_WAITING_STATES",
    "REVIEW_AGE_BOUNDS",
    "AuditTail",
    "BreakerReading",
    "DatabaseReadings",
    "DeadLetterCount",
    "ExchangeCount",
    "JobProgress",
    "ObligationsOpen",
    "OnboardingProgress",
    "PullScheduleCount",
    "PullSchedulesReading",
    "ReviewBacklog",
    "WaitingCount",
]

# The ages the open review cases are counted past: an hour, a day, three days (the new
# payer's default wait for the old payer's reviewer).
REVIEW_AGE_BOUNDS = (timedelta(hours=1), timedelta(hours=24), timedelta(hours=72))
# An active standing pull due longer ago than this is overdue: the upkeep sweep starts a
# due pull within a minute, and looks at a started one a day later (ADR 0040), so one
# left past its due time this long means the sweep is not running, or fails on it. Not
# overdue: one whose last pull is still running or waits for a reviewer, in one of
# ``PULL_WAITING_STATES`` (the sweep leaves it be, however long that takes).
PULL_OVERDUE_AFTER = timedelta(days=1)
PULL_WAITING_STATES = frozenset(
    state.value
    for state in ExchangeState
    if state not in STOPPED_STATES or state is ExchangeState.MANUAL_REVIEW
)


@dataclass(frozen=True)
class ExchangeCount:
    state: str
    reason_code: str | None
    count: int


@dataclass(frozen=True)
class ReviewBacklog:
    open: int
    oldest_opened_at: datetime | None
    # How many open cases are older than each of REVIEW_AGE_BOUNDS (seconds → cases).
    older_than: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DeadLetterCount:
    """Exchanges still dead-lettered (neither replayed nor given up on), by step and why."""

    step: str
    reason_code: str
    count: int
    oldest_at: datetime


@dataclass(frozen=True)
class BreakerReading:
    partner_id: str
    endpoint: str
    status: str  # closed | open | half_open


@dataclass(frozen=True)
class JobProgress:
    """Bulk jobs not yet finished, by kind and status: how many, their members, done."""

    kind: str
    status: str
    jobs: int
    members: int
    done: int


@dataclass(frozen=True)
class OnboardingProgress:
    """Onboardings still running: how many, their members, and their chunks by stage."""

    running: int
    members: int
    members_done: int
    chunks: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditTail:
    """The chain's head and its last signed checkpoint: what is not yet signed."""

    head_seq: int
    checkpoint_seq: int
    checkpoint_at: datetime | None
    oldest_unsigned_at: datetime | None  # the first event after the checkpoint

    @property
    def unsigned(self) -> int:
        return max(self.head_seq - self.checkpoint_seq, 0)


@dataclass(frozen=True)
class ObligationsOpen:
    """An obligation's rows not done yet, by where they stand now (ADR 0037)."""

    obligation: str
    pending: int
    at_risk: int
    missed: int


@dataclass(frozen=True)
class PullScheduleCount:
    """Standing pulls of a kind in a status (ADR 0040)."""

    kind: str
    status: str
    count: int


@dataclass(frozen=True)
class PullSchedulesReading:
    """The standing pulls by kind and status, and the active ones overdue (due more than
    ``PULL_OVERDUE_AFTER`` ago, and not waiting on their last pull)."""

    counts: tuple[PullScheduleCount, ...] = ()
    overdue: int = 0


@dataclass(frozen=True)
class WaitingCount:
    """Exchanges in flight waiting for their next attempt at a partner, by what their
    row says they wait on (``exchange.calls.outbound.wait_reason`` names it)."""

    partner_id: str
    last_error: str | None
    count: int


@dataclass(frozen=True)
class DatabaseReadings:
    exchanges: tuple[ExchangeCount, ...]
    reviews: ReviewBacklog
    dead_letters: tuple[DeadLetterCount, ...]
    breakers: tuple[BreakerReading, ...]
    bulk_jobs: tuple[JobProgress, ...]
    onboardings: OnboardingProgress
    audit: AuditTail
    obligations: tuple[ObligationsOpen, ...] = ()
    pull_schedules: PullSchedulesReading = field(default_factory=PullSchedulesReading)
    waiting: tuple[WaitingCount, ...] = ()
