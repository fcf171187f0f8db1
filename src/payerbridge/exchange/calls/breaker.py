"""Circuit breaker per partner endpoint (pure state transitions; the store shares them).

    closed ──(threshold consecutive failures)──▶ open ──(probe due: claimed)──▶ half_open
      ▲  ▲                                        ▲                                │
      │  └────────(any call or probe answered)────┼────────────────────────────────┤
      │                                           └──────(probe failed: open again)┘
      └── a successful call closes it from any status

While open, exchanges are parked: no call of theirs goes out and none spends an attempt.
The breaker is probed on its own schedule, once per ``interval``: whoever finds the probe
due first (a parked exchange waking, or the upkeep sweep) claims it under the row's lock
(``half_open``, with a lease of one interval) and makes one light call to the endpoint,
not an exchange's own; its answer closes the breaker or opens it for another interval.
So at most one probe per interval goes out for an endpoint, however many exchanges wait
and however many workers run them; a prober that dies loses its lease at its end.

What a screen shows is ``as_seen(state, now)``: an open breaker whose ``open_until`` has
passed is no longer holding calls back (its probe is due), so it reads half-open, never
"open" for ever.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.exchange.model import CLOSED, BreakerState, BreakerStatus, as_seen
from payerbridge.types import PartnerId

__all__ = [
    "Admission",
    "admit",
    "as_seen",
    "BreakerChange",
    "breaker_event",
    "record_failure",
    "record_probe",
    "record_success",
    "settle_seconds",
]


@dataclass(frozen=True)
class Admission:
    """Whether a call may go out now. Not allowed: ``probe`` when the caller has just
    claimed the endpoint's probe (``state`` holds its lease) and is to make it first,
    else ``retry_at``, when to look again."""

    allowed: bool
    state: BreakerState
    retry_at: datetime | None = None
    probe: bool = False


def settle_seconds(interval: timedelta) -> float:
    """How soon a call held back by a probe in flight looks again: a probe ends at once
    on a refused connection, so its outcome is read long before its lease runs out."""
    return min(1.0, interval.total_seconds() / 10)


def admit(state: BreakerState, now: datetime, interval: timedelta) -> Admission:
    """What the breaker lets a caller do at ``now``: call, wait, or claim the probe."""
    if state.status is BreakerStatus.CLOSED:
        return Admission(True, state)
    due = state.next_probe_at
    if due is None or now >= due:  # the probe is due (or its prober's lease ran out)
        claimed = replace(state, status=BreakerStatus.HALF_OPEN, probe_until=now + interval)
        return Admission(False, claimed, probe=True)
    if state.status is BreakerStatus.OPEN:
        return Admission(False, state, due)
    settle = now + timedelta(seconds=settle_seconds(interval))
    return Admission(False, state, min(due, settle))  # a probe is in flight


def record_success(state: BreakerState) -> BreakerState:
    """A call or a probe answered: the endpoint is up."""
    return CLOSED if state != CLOSED else state


def record_failure(
    state: BreakerState, now: datetime, *, threshold: int, cooldown: timedelta
) -> BreakerState:
    """A call found the endpoint down. A closed breaker opens at ``threshold`` failures in
    a row, for one probe interval (``cooldown``); an open or half-open one only counts it
    (its probe schedule is its own: a straggling call does not put it off)."""
    failures = state.consecutive_failures + 1
    if state.status is BreakerStatus.CLOSED and failures >= threshold:
        return BreakerState(BreakerStatus.OPEN, failures, open_until=now + cooldown)
    return replace(state, consecutive_failures=failures)


def record_probe(
    state: BreakerState, now: datetime, *, answered: bool, interval: timedelta
) -> BreakerState:
    """The probe's outcome: answered closes the breaker; not answered opens it until the
    next probe is due. A breaker that left half-open meanwhile (a call answered and
    closed it) is not reopened by a probe that ended late."""
    if answered:
        return record_success(state)
    if state.status is not BreakerStatus.HALF_OPEN:
        return replace(state, consecutive_failures=state.consecutive_failures + 1)
    failures = state.consecutive_failures + 1
    return BreakerState(BreakerStatus.OPEN, failures, open_until=now + interval)


_ACTIONS = {
    BreakerStatus.OPEN: "breaker.opened",
    BreakerStatus.HALF_OPEN: "breaker.half-opened",
    BreakerStatus.CLOSED: "breaker.closed",
}


@dataclass(frozen=True)
class BreakerChange:
    """An endpoint's breaker moving from ``before`` to ``after``; ``detail``, the probe
    that moved it, when one did."""

    endpoint: str
    partner_id: PartnerId
    before: BreakerState
    after: BreakerState
    detail: dict[str, Any] | None = None


def breaker_event(change: BreakerChange, *, at: datetime) -> AuditEvent:
    """The audit event of the endpoint's breaker changing status."""
    before, after = change.before, change.after
    next_probe = after.next_probe_at
    return AuditEvent(
        at=at,
        actor="payerbridge",
        action=_ACTIONS[after.status],
        entity_type="PartnerEndpoint",
        entity_id=change.endpoint,
        outcome=after.status.value,
        request_id=None,
        detail={
            "partner_id": change.partner_id,
            "from": before.status.value,
            "consecutive_failures": after.consecutive_failures,
            "next_probe_at": next_probe.isoformat() if next_probe else None,
            **(change.detail or {}),
        },
    )
