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
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from payerbridge.metrics.model import (
    PULL_OVERDUE_AFTER,
    PULL_WAITING_STATES,
    REVIEW_AGE_BOUNDS,
    AuditTail,
    BreakerReading,
    DatabaseReadings,
    DeadLetterCount,
    ExchangeCount,
    JobProgress,
    ObligationsOpen,
    OnboardingProgress,
    PullScheduleCount,
    PullSchedulesReading,
    ReviewBacklog,
    WaitingCount,
)
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
