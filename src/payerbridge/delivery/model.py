"""A delivery of an exchange's received record to the plan's FHIR server (pure: no I/O,
no clock, no randomness).

One delivery per exchange run (its first, or a replay), or per onboarding, and
destination: its subject is where what it carries is held (``exchange:<id>``,
``onboarding:<id>``: the ``source`` of the stored resources). It is
``pending`` until its workflow first takes it, ``delivering`` while it posts,
``waiting`` when the destination could not take it now (unreachable, 5xx, 408, 429:
tried again at ``next_at``, with full-jitter backoff and the destination's Retry-After
honoured, within the destination's budget), and ends ``delivered``, ``refused`` (the
destination said no: a 4xx with its OperationOutcome's issue codes, or our token was
refused) or ``failed`` (the budget was spent while the destination stayed down).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from payerbridge.exchange.calls.retry import full_jitter_delay

__all__ = [
    "DeliveryReason",
    "DeliveryRecord",
    "DeliveryState",
    "DestinationAnswer",
    "DestinationPolicy",
    "ENDED_STATES",
    "FailedAttempt",
    "delivery_id",
    "exchange_subject",
    "onboarding_subject",
    "next_attempt",
    "outcome_codes",
]


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    WAITING = "waiting"
    DELIVERED = "delivered"
    REFUSED = "refused"
    FAILED = "failed"


ENDED_STATES = frozenset({DeliveryState.DELIVERED, DeliveryState.REFUSED, DeliveryState.FAILED})


class DeliveryReason(StrEnum):
    REFUSED = "destination-refused"  # a 4xx: the destination will not take the Bundle
    AUTH_REFUSED = "destination-auth-refused"  # our client or token was refused
    UNAVAILABLE = "destination-unavailable"  # down past the delivery's budget


@dataclass(frozen=True)
class DestinationPolicy:
    """How one destination is retried: for at most ``budget_seconds`` from the delivery's
    first attempt, each wait full-jittered up to ``max_delay_seconds``."""

    budget_seconds: float = 3600.0
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 60.0
    max_entries: int = 500  # per transaction Bundle


@dataclass(frozen=True)
class DestinationAnswer:
    """What the destination answered one transaction: ``written`` (2xx), ``retry`` (it
    could not take it now; ``retry_after`` its Retry-After in seconds), or a refusal
    (``reason``, the status, its OperationOutcome's issue codes and the body's hash:
    never its text, which may echo what we sent)."""

    written: bool = False
    retry: bool = False
    status: int | None = None
    retry_after: float | None = None
    reason: DeliveryReason | None = None
    issue_codes: tuple[str, ...] = ()
    outcome_hash: str | None = None
    error: str = ""  # what went wrong, in our words (no URL, no body)
    # Per type, the conditional creates the destination answered with what it held
    # (``200 OK``, not ``201 Created``): posted, not written.
    found: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    subject: str  # what it carries: exchange:<id> (a run of it) or onboarding:<id>
    destination_id: str
    run: int  # the exchange's replay count
    state: DeliveryState
    attempts: int
    next_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    reason_code: str | None
    issue_codes: tuple[str, ...]
    outcome_hash: str | None
    written: dict[str, int] = field(default_factory=dict)  # per type, this delivery
    unchanged: int = 0  # held resources the destination already had from us

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination_id,
            "run": self.run,
            "state": self.state.value,
            "attempts": self.attempts,
            "next_attempt_at": self.next_at.isoformat() if self.next_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "reason_code": self.reason_code,
            "issue_codes": list(self.issue_codes),
            "written": dict(sorted(self.written.items())),
            "unchanged": self.unchanged,
        }


def delivery_id(subject: str, destination_id: str, run: int) -> str:
    """The delivery's id, derived: one per subject's run and destination, whoever asks."""
    return f"{subject}:{destination_id}:{run}"


def exchange_subject(exchange_id: str) -> str:
    """The subject of an exchange's deliveries: what it stored is held under it too."""
    return f"exchange:{exchange_id}"


def onboarding_subject(onboarding_id: str) -> str:
    return f"onboarding:{onboarding_id}"


@dataclass(frozen=True)
class FailedAttempt:
    """Attempt number ``attempt`` of a delivery first tried at ``started_at`` could not be
    taken; the destination asked to wait ``retry_after`` seconds (None: it did not say)."""

    attempt: int
    started_at: datetime
    retry_after: float | None


def next_attempt(
    policy: DestinationPolicy, failed: FailedAttempt, *, now: datetime, unit_random: float
) -> datetime | None:
    """When to try again (full jitter, at least the destination's Retry-After and half a
    second, at the latest when the budget ends), or None once even that would be past
    the budget."""
    shortest = max(failed.retry_after or 0.0, 0.5)
    delay = full_jitter_delay(policy, failed.attempt, unit_random)
    delay = min(max(delay, shortest), max(policy.max_delay_seconds, shortest))
    end = failed.started_at + timedelta(seconds=policy.budget_seconds)
    if now + timedelta(seconds=shortest) > end:
        return None
    return min(now + timedelta(seconds=delay), end)


def outcome_codes(body: Any, raw: bytes) -> tuple[tuple[str, ...], str]:
    """An OperationOutcome's issue codes (each at most 64 characters) and the hash of
    the body as sent: what we keep of a refusal."""
    codes: list[str] = []
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        for issue in body.get("issue") or ():
            code = issue.get("code") if isinstance(issue, dict) else None
            if isinstance(code, str) and code and code not in codes:
                codes.append(code[:64])
    return tuple(codes[:20]), hashlib.sha256(raw).hexdigest()
