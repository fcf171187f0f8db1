"""The oversight room's port: indexed, grouped reads over what the other rooms keep
(``store.oversight``). Every read is bounded: a window of buckets, or one page."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from payerbridge.oversight.model import (
    BucketCount,
    CallEvent,
    Grain,
    JobProgress,
    OnboardingProgress,
)

__all__ = ["Oversight", "PartnerCalls", "Readiness"]


class Oversight(Protocol):
    def exchanges_created(self, since: datetime, grain: Grain) -> list[BucketCount]:
        """Exchanges created since ``since``, by bucket and the state they are in now."""
        ...

    def match_outcomes(self, since: datetime, grain: Grain) -> list[BucketCount]:
        """``$member-match`` decisions made since ``since`` (ours, as the old payer), by
        bucket and outcome."""
        ...

    def reviews_opened(self, since: datetime, grain: Grain) -> list[BucketCount]: ...

    def reviews_closed(self, since: datetime, grain: Grain) -> list[BucketCount]: ...

    def open_reviews(self) -> tuple[int, datetime | None]:
        """How many identity review cases are open, and when the oldest was opened."""
        ...

    def dead_letters(self, since: datetime, grain: Grain) -> list[BucketCount]:
        """Exchanges dead-lettered since ``since``, by bucket and reason code."""
        ...

    def partner_exchanges(self, since: datetime) -> dict[str, dict[str, int]]:
        """Per partner, its exchanges created since ``since`` by the state they are in."""
        ...

    def bulk_jobs(
        self, *, status: str | None, offset: int, count: int
    ) -> tuple[int, list[JobProgress]]:
        """(total, one page newest first) of the bulk jobs, of one status or all."""
        ...

    def onboardings(
        self, *, status: str | None, offset: int, count: int
    ) -> tuple[int, list[OnboardingProgress]]: ...

    def last_event(self, entity_type: str, entity_id: str, action: str) -> dict[str, Any] | None:
        """The entity's newest audit event of ``action`` (``AuditTrail``'s shape)."""
        ...


class PartnerCalls(Protocol):
    def call_events_since(self, since: datetime) -> list[CallEvent]:
        """The events since ``since`` that carry calls to partners (exchanges' calls,
        breakers' probes, scheduled checks), the newest first; at most a bounded number
        (a busy window is judged on its latest)."""
        ...


class Readiness(Protocol):
    """Whether the database answers now (``GET /healthz``, a readiness probe)."""

    def ping(self) -> None:
        """Return when the database answers one trivial statement; StoreUnavailable
        when it does not."""
        ...
