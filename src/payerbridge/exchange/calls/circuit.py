"""The endpoint's breaker as the exchanges' calls move it, and its probe (``breaker.py``
holds the pure transitions; ADR 0047).

A healthy breaker is only read. Any other change is one transaction that holds the
breaker's row (``BreakerStore.lock``), with the audit event of a change of status: a
probe claimed (``breaker.half-opened``), a probe's outcome (``breaker.closed`` or
``breaker.opened``, with what the probe found), a call's failures opening it, a call's
answer closing it. An open breaker that is not due for its probe is read, not written:
the exchanges parked on it wake and look without taking its lock.

The probe is a light call of its own (``PartnerClient.probe``: the partner's
CapabilityStatement), made by whoever finds it due first: a parked exchange waking, or
the upkeep sweep (``probe_due_breakers``), so a breaker nobody waits on still closes
when its partner is back.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from payerbridge.exchange.calls.breaker import (
    Admission,
    BreakerChange,
    admit,
    breaker_event,
    record_failure,
    record_probe,
    record_success,
)
from payerbridge.exchange.model import BreakerState, BreakerStatus
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.routing.model import Partner

__all__ = ["admit_call", "probe_due_breakers", "probe_interval", "record_outcome"]

logger = logging.getLogger(__name__)


def probe_interval(uow: ExchangeUnit) -> timedelta:
    """How long an open breaker holds calls back before its next probe."""
    return timedelta(seconds=uow.retry_policy.breaker_cooldown_seconds)


def admit_call(uow: ExchangeUnit, partner: Partner, now: datetime) -> Admission:
    """Whether the endpoint's breaker lets a call go now. Closed: read only. Open and not
    due: read only, and when to look again. Due for its probe: the probe is claimed under
    the row's lock and made here, and its outcome answers (closed: the call may go)."""
    endpoint = partner.fhir_base
    current = uow.breakers.get(endpoint)
    if current.status is BreakerStatus.CLOSED:  # the common case needs no write lock
        return Admission(True, current)
    interval = probe_interval(uow)
    seen = admit(current, now, interval)
    if not seen.probe:
        return seen  # held back: nothing to write
    with uow:
        before = uow.breakers.lock(endpoint, partner.id, at=now)
        admission = admit(before, now, interval)
        if admission.probe:
            _keep(uow, BreakerChange(endpoint, partner.id, before, admission.state), now)
    if not admission.probe:  # another worker claimed it, or a call closed the breaker
        return admission
    return _probe(uow, partner, interval)


def _probe(uow: ExchangeUnit, partner: Partner, interval: timedelta) -> Admission:
    """Make the probe this caller claimed, within its lease, and record its outcome."""
    timeout = min(uow.retry_policy.call_timeout_seconds, interval.total_seconds())
    answer = uow.client.probe(partner, timeout=timeout)
    now = uow.clock()
    endpoint = partner.fhir_base
    with uow:
        before = uow.breakers.lock(endpoint, partner.id, at=now)
        after = record_probe(before, now, answered=answer.answered, interval=interval)
        probe = {"probe": {"at": now.isoformat(), **answer.to_json()}}
        _keep(uow, BreakerChange(endpoint, partner.id, before, after, probe), now)
    logger.info(
        "partner endpoint probed",
        extra={"partner_id": partner.id, "answered": answer.answered, "status": answer.status},
    )
    if after.status is BreakerStatus.CLOSED:
        return Admission(True, after)
    return Admission(False, after, after.next_probe_at)


def record_outcome(
    uow: ExchangeUnit, partner: Partner, *, succeeded: bool, seen: BreakerState | None = None
) -> None:
    """The call's outcome on the endpoint's breaker; ``seen``: the state the call was
    admitted under. An answer closes a breaker that is not closed (another worker may
    have opened it while this call was out); one admitted under a healthy breaker that
    is still closed writes nothing (failures other calls recorded meanwhile are left to
    count, which can only open the breaker a call earlier)."""
    healthy = BreakerState()
    endpoint = partner.fhir_base
    if succeeded:
        current = uow.breakers.get(endpoint)  # trusted for a moment when healthy
        if current == healthy:
            return
        if seen == healthy and current.status is BreakerStatus.CLOSED:
            return
    policy = uow.retry_policy
    now = uow.clock()
    with uow:
        before = uow.breakers.lock(endpoint, partner.id, at=now)
        if succeeded:
            after = record_success(before)
        else:
            cooldown = probe_interval(uow)
            threshold = policy.breaker_failure_threshold
            after = record_failure(before, now, threshold=threshold, cooldown=cooldown)
        _keep(uow, BreakerChange(endpoint, partner.id, before, after), now)


def probe_due_breakers(uow: ExchangeUnit) -> int:
    """Probe every endpoint whose probe is due (the upkeep sweep runs this): the number
    probed. An endpoint no longer among its partner's active endpoints (re-pointed, or
    turned off) is left alone."""
    now = uow.clock()
    interval = probe_interval(uow)
    probed = 0
    for endpoint, partner_id, state in uow.breakers.unhealthy():
        if not admit(state, now, interval).probe:
            continue
        partner = uow.partners.get(partner_id)
        at = [e for e in partner.call_order() if e.base == endpoint] if partner else []
        if partner is None or not at:
            continue
        admit_call(uow, partner.at(at[0]), now)
        probed += 1
    return probed


def _keep(uow: ExchangeUnit, change: BreakerChange, at: datetime) -> None:
    """The breaker's change in ``uow``'s transaction, audited when its status changed."""
    before, after = change.before, change.after
    if after == before:
        return
    uow.breakers.save(change.endpoint, change.partner_id, after, at=at)
    if after.status is not before.status:
        uow.record(breaker_event(change, at=at))
