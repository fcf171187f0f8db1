"""A partner's health (pure): up, degraded, down or in maintenance, derived from what the
platform already keeps: its breaker as it stands now (``exchange.calls.breaker.as_seen``), its
maintenance windows, and the calls made to it over a recent window (exchanges' partner
calls and the breaker's probes, as the audit trail keeps them).

    in maintenance  a window of its operations holds it now (whatever the calls say)
    down            its breaker is not closed, or every call of the last minutes (the
                    policy's ``state_window``) went unanswered
    degraded        some of those went unanswered (at least ``degraded_share``), failures in a
                    row are counted on a closed breaker, or the p95 latency (over the
                    longer ``window``, like the last success and the error mix) is
                    over ``slow_ms``
    up              otherwise, a window without calls included

A call the partner answered, refusal included (no match, a consent refusal, a 4xx), is
the partner being up: only an unanswered call (unreachable, timed out, a 5xx or 429)
counts against its health. A scheduled check's token request is judged apart: when the
latest gave no token (our credentials refused, ``TOKEN_REFUSED``, or no answer) the
partner is degraded at least, since no exchange with it can go until that is fixed.

A partner nobody calls is checked on a schedule (``due_for_check``): its capabilities
and its token endpoint, so a partner that went down while idle reads down before the
next exchange finds out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from payerbridge.exchange.calls.breaker import as_seen
from payerbridge.exchange.model import BreakerState, BreakerStatus
from payerbridge.oversight.model import CallSample
from payerbridge.routing.model import Partner
from payerbridge.routing.operations import PartnerStatus
from payerbridge.types import PartnerId

__all__ = [
    "HealthPolicy",
    "HealthState",
    "PartnerHealth",
    "TOKEN_ANSWERED",
    "TOKEN_REFUSED",
    "derive_health",
    "due_for_check",
    "p95",
    "partners_health",
]


# The kinds of a scheduled check's token request: a token came, or the partner's token
# endpoint refused our credentials (any other failure is "token " and what went wrong).
TOKEN_ANSWERED = "token answered"
TOKEN_REFUSED = "token refused"


class HealthState(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True)
class HealthPolicy:
    window: timedelta = timedelta(hours=1)  # last success, error mix, p95
    state_window: timedelta = timedelta(minutes=5)  # the calls the state is judged on
    degraded_share: float = 0.1
    slow_ms: int = 5000


@dataclass(frozen=True)
class PartnerHealth:
    state: HealthState
    breaker: BreakerState
    calls: int
    unanswered: int
    last_success_at: datetime | None
    latency_p95_ms: int | None
    error_mix: dict[str, int] = field(default_factory=dict)
    maintenance_until: datetime | None = None
    maintenance_reason: str | None = None
    reasons: tuple[str, ...] = ()

    @property
    def next_probe_at(self) -> datetime | None:
        return self.breaker.next_probe_at

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "state": self.state.value,
            "reasons": list(self.reasons),
            "calls": self.calls,
            "unanswered": self.unanswered,
            "last_success_at": iso(self.last_success_at),
            "latency_p95_ms": self.latency_p95_ms,
            "error_mix": dict(self.error_mix),
            "breaker": {
                "status": self.breaker.status.value,
                "consecutive_failures": self.breaker.consecutive_failures,
                "next_probe_at": iso(self.breaker.next_probe_at),
            },
            "maintenance": (
                {"until": iso(self.maintenance_until), "reason": self.maintenance_reason}
                if self.maintenance_until
                else None
            ),
        }


def p95(latencies: Sequence[int]) -> int | None:
    """The 95th percentile (nearest rank) of ``latencies``; None when there are none."""
    if not latencies:
        return None
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def derive_health(
    breaker: BreakerState,
    calls: Sequence[CallSample],
    *,
    maintenance: tuple[datetime, str] | None,
    last_success_before: datetime | None,
    now: datetime,
    policy: HealthPolicy = HealthPolicy(),  # noqa: B008 (frozen)
) -> PartnerHealth:
    """The partner's health at ``now``. ``breaker``: as seen at ``now``; ``calls``: those
    of the policy's window (older ones are left out here too); ``last_success_before``:
    its last answered call before the window, if the caller knows it."""
    recent = [c for c in calls if now - policy.window <= c.at <= now]
    answered = [c for c in recent if c.answered]
    unanswered = len(recent) - len(answered)
    latency = p95([c.latency_ms for c in answered])
    last_success = max((c.at for c in answered), default=last_success_before)
    mix = Counter(c.kind for c in recent if c.kind not in ("answered", TOKEN_ANSWERED))
    latest = [c for c in recent if now - policy.state_window <= c.at]
    state, reasons = _judge(breaker, latest, latency, maintenance, policy)
    return PartnerHealth(
        state=state,
        breaker=breaker,
        calls=len(recent),
        unanswered=unanswered,
        last_success_at=last_success,
        latency_p95_ms=latency,
        error_mix=dict(sorted(mix.items())),
        maintenance_until=maintenance[0] if maintenance else None,
        maintenance_reason=maintenance[1] if maintenance else None,
        reasons=reasons,
    )


def _judge(
    breaker: BreakerState,
    recent: Sequence[CallSample],
    latency: int | None,
    maintenance: tuple[datetime, str] | None,
    policy: HealthPolicy,
) -> tuple[HealthState, tuple[str, ...]]:
    if maintenance is not None:
        return HealthState.MAINTENANCE, (f"in maintenance: {maintenance[1]}",)
    if breaker.status is not BreakerStatus.CLOSED:
        return HealthState.DOWN, (f"breaker {breaker.status.value}",)
    unanswered = sum(1 for c in recent if not c.answered)
    if recent and unanswered == len(recent):
        return HealthState.DOWN, (f"none of {len(recent)} calls answered",)
    reasons: list[str] = []
    if recent and unanswered / len(recent) >= policy.degraded_share:
        reasons.append(f"{unanswered} of {len(recent)} calls unanswered")
    if breaker.consecutive_failures:
        reasons.append(f"{breaker.consecutive_failures} failures in a row")
    tokens = [c for c in recent if c.kind.startswith("token ")]
    latest = max(tokens, key=lambda c: c.at).kind if tokens else TOKEN_ANSWERED
    if latest.startswith(TOKEN_REFUSED):
        reasons.append("its token endpoint refused our credentials at the latest check")
    elif latest != TOKEN_ANSWERED:
        reasons.append(f"no token at the latest check ({latest})")
    if latency is not None and latency > policy.slow_ms:
        reasons.append(f"p95 {latency} ms over {policy.slow_ms} ms")
    return (HealthState.DEGRADED if reasons else HealthState.UP), tuple(reasons)


def partners_health(
    partners: Sequence[Partner],
    breakers: Mapping[str, BreakerState],
    calls: Mapping[str, Sequence[CallSample]],
    now: datetime,
    policy: HealthPolicy = HealthPolicy(),  # noqa: B008 (frozen)
) -> dict[PartnerId, PartnerHealth]:
    """Each partner's health at ``now`` from its endpoint's breaker (as recorded: seen
    here at ``now``), its calls (by partner id) and its maintenance windows."""
    return {
        partner.id: derive_health(
            as_seen(breakers.get(partner.fhir_base) or BreakerState(), now),
            calls.get(partner.id, ()),
            maintenance=partner.operations.in_maintenance(now),
            last_success_before=None,
            now=now,
            policy=policy,
        )
        for partner in partners
    }


def due_for_check(
    partners: Sequence[Partner],
    breakers: Mapping[str, BreakerState],
    calls: Mapping[str, Sequence[CallSample]],
    now: datetime,
    *,
    interval: timedelta,
    limit: int,
) -> list[Partner]:
    """The partners to check now, at most ``limit``: active ones, out of maintenance,
    whose breaker is closed (an open one has its own probe) and that nothing was heard
    from or sent to (a call, a probe, a check) within ``interval``. ``calls``: by partner
    id, those of at least the last ``interval``."""
    due = []
    for partner in partners:
        if partner.operations.status is not PartnerStatus.ACTIVE:
            continue
        if partner.operations.in_maintenance(now):
            continue
        breaker = as_seen(breakers.get(partner.fhir_base) or BreakerState(), now)
        if breaker.status is not BreakerStatus.CLOSED:
            continue
        if any(now - interval < c.at <= now for c in calls.get(partner.id, ())):
            continue
        due.append(partner)
    return due[:limit]
