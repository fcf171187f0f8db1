"""Circuit breaker per partner endpoint (pure state transitions; the store shares them).

    closed ──(threshold consecutive failures)──▶ open ──(cooldown over)──▶ half_open
      ▲                                                                      │
      └──────────────(probe succeeds)─────────── half_open ◀──(probe fails: open again)

While open, calls are not made: the step waits until the breaker may half-open.
In half-open exactly one caller (the probe) is let through; if that caller dies
mid-call its probe lease expires after one cooldown and another caller may probe.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from payerbridge.audit.model import AuditEvent
from payerbridge.types import PartnerId

__all__ = [
    "Admission",
    "BreakerState",
    "BreakerStatus",
    "admit",
    "breaker_event",
    "record_failure",
    "record_success",
]


class BreakerStatus(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerState:
    status: BreakerStatus = BreakerStatus.CLOSED
    consecutive_failures: int = 0
    open_until: datetime | None = None
    probe_until: datetime | None = None  # lease of the caller probing a half-open breaker


CLOSED = BreakerState()


@dataclass(frozen=True)
class Admission:
    """Whether a call may go out now; if not, the earliest time it could."""

    allowed: bool
    state: BreakerState
    retry_at: datetime | None = None


def admit(state: BreakerState, now: datetime, cooldown: timedelta) -> Admission:
    if state.status is BreakerStatus.CLOSED:
        return Admission(True, state)
    if state.status is BreakerStatus.OPEN:
        assert state.open_until is not None
        if now < state.open_until:
            return Admission(False, state, state.open_until)
        probing = replace(state, status=BreakerStatus.HALF_OPEN, probe_until=now + cooldown)
        return Admission(True, probing)
    assert state.probe_until is not None
    if now < state.probe_until:  # someone else is probing
        return Admission(False, state, state.probe_until)
    return Admission(True, replace(state, probe_until=now + cooldown))


def record_success(state: BreakerState) -> BreakerState:
    return CLOSED if state != CLOSED else state


def record_failure(
    state: BreakerState, now: datetime, *, threshold: int, cooldown: timedelta
) -> BreakerState:
    failures = state.consecutive_failures + 1
    if state.status is BreakerStatus.HALF_OPEN or failures >= threshold:
        return BreakerState(BreakerStatus.OPEN, failures, open_until=now + cooldown)
    return replace(state, consecutive_failures=failures)


_ACTIONS = {
    BreakerStatus.OPEN: "breaker.opened",
    BreakerStatus.HALF_OPEN: "breaker.half-opened",
    BreakerStatus.CLOSED: "breaker.closed",
}


def breaker_event(
    endpoint: str, partner_id: PartnerId, before: BreakerState, after: BreakerState, *, at: datetime
) -> AuditEvent:
    """The audit event of the endpoint's breaker changing status, ``before`` → ``after``."""
    return AuditEvent(
        at=at,
        actor="payerbridge",
        action=_ACTIONS[after.status],
        entity_type="PartnerEndpoint",
        entity_id=endpoint,
        outcome=after.status.value,
        request_id=None,
        detail={
            "partner_id": partner_id,
            "from": before.status.value,
            "consecutive_failures": after.consecutive_failures,
        },
    )
