"""What the database says about the platform now: the state every process shares.

Exchanges by state and reason, those waiting at a partner and why, the review backlog
and its age, dead letters, breakers,
bulk jobs and onboardings in progress, the audit chain's unsigned tail, the standing
pulls and those overdue. A store adapter
reads them in a few aggregated, indexed queries (``ReadingsSource``); ``take_snapshot``
adds the partners' operational state and what the clock makes of the timestamps. The
scrape (``metrics.database``) and the operator console read the same ``Snapshot``, so
whichever process answers, it reports the same truth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from payerbridge.exchange.model import STOPPED_STATES, ExchangeState
from payerbridge.routing.model import Partner

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
    "PartnerState",
    "PullScheduleCount",
    "PullSchedulesReading",
    "ReadingsSource",
    "ReviewBacklog",
    "Snapshot",
    "WaitingCount",
    "take_snapshot",
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


class ReadingsSource(Protocol):
    def read(self, *, now: datetime, review_ages: Sequence[timedelta]) -> DatabaseReadings:
        """The readings as of ``now`` (open review cases counted past each of
        ``review_ages``)."""
        ...


@dataclass(frozen=True)
class PartnerState:
    partner_id: str
    status: str  # active | suspended (the operators' word)
    breaker: str  # the worst of its endpoints' breakers: open, half_open, closed
    in_maintenance: bool


@dataclass(frozen=True)
class Snapshot:
    """The platform's shared state at ``at`` (the console charts these)."""

    at: datetime
    readings: DatabaseReadings
    partners: tuple[PartnerState, ...]

    def age_seconds(self, since: datetime | None) -> float:
        return max((self.at - since).total_seconds(), 0.0) if since is not None else 0.0

    @property
    def review_oldest_age_seconds(self) -> float:
        return self.age_seconds(self.readings.reviews.oldest_opened_at)

    @property
    def audit_unsigned_age_seconds(self) -> float:
        return self.age_seconds(self.readings.audit.oldest_unsigned_at)

    def exchanges_by_state(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for row in self.readings.exchanges:
            totals[row.state] = totals.get(row.state, 0) + row.count
        return totals

    def as_dict(self) -> dict[str, Any]:
        """Plain values (datetimes as they are), for a template or JSON."""
        return {
            **asdict(self),
            "exchanges_by_state": self.exchanges_by_state(),
            "review_oldest_age_seconds": self.review_oldest_age_seconds,
            "audit_unsigned_events": self.readings.audit.unsigned,
            "audit_unsigned_age_seconds": self.audit_unsigned_age_seconds,
        }


_BREAKER_RANK = {"closed": 0, "half_open": 1, "open": 2}


def take_snapshot(
    source: ReadingsSource, partners: Callable[[], Sequence[Partner]], *, now: datetime
) -> Snapshot:
    """The shared state as of ``now``: the database's readings and each partner's."""
    readings = source.read(now=now, review_ages=REVIEW_AGE_BOUNDS)
    worst: dict[str, str] = {}
    for breaker in readings.breakers:
        seen = worst.get(breaker.partner_id, "closed")
        if _BREAKER_RANK.get(breaker.status, 2) > _BREAKER_RANK.get(seen, 2):
            seen = breaker.status
        worst[breaker.partner_id] = seen
    states = tuple(
        PartnerState(
            partner_id=partner.id,
            status=partner.operations.status.value,
            breaker=worst.get(partner.id, "closed"),
            in_maintenance=partner.operations.in_maintenance(now) is not None,
        )
        for partner in sorted(partners(), key=lambda p: p.id)
    )
    return Snapshot(at=now, readings=readings, partners=states)
