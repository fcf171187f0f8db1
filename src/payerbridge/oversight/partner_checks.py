"""Scheduled checks of the partners nobody is calling (the upkeep sweep runs this): each
quiet partner's CapabilityStatement and, when we authenticate with it, its token
endpoint, so its health (``partner_health``) is read from something recent. A partner
exchanges are calling, or whose open breaker is probed, is not checked: those calls
already say how it is.

Each check is one audit event (``partner.checked``, on the endpoint) carrying what each
part answered, no body and no token; the health page reads it back as two calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from payerbridge.audit.model import AuditEvent
from payerbridge.exchange.model import BreakerState
from payerbridge.exchange.ports import ProbeAnswer
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.oversight.call_samples import calls_since
from payerbridge.oversight.partner_health import due_for_check
from payerbridge.oversight.ports import PartnerCalls
from payerbridge.routing.model import Partner
from payerbridge.types import PartnerId

__all__ = ["CHECKS_PER_SWEEP", "PartnerCheck", "check_event", "check_quiet_partners"]

logger = logging.getLogger(__name__)

# A sweep checks at most this many, so one sweep's checks end within its interval even
# when every partner times out; the rest are due at the next.
CHECKS_PER_SWEEP = 8


@dataclass(frozen=True)
class PartnerCheck:
    partner_id: PartnerId
    endpoint: str
    at: datetime
    capabilities: ProbeAnswer
    token: ProbeAnswer | None  # None: we ask it for no token

    @property
    def answered(self) -> bool:
        return self.capabilities.answered and (self.token is None or self.token.answered)


def check_event(check: PartnerCheck) -> AuditEvent:
    """The audit event of one check (what each part answered)."""
    return AuditEvent(
        at=check.at,
        actor="payerbridge",
        action="partner.checked",
        entity_type="PartnerEndpoint",
        entity_id=check.endpoint,
        outcome="answered" if check.answered else "unanswered",
        detail={
            "partner_id": check.partner_id,
            "check": {
                "at": check.at.isoformat(),
                "capabilities": check.capabilities.to_json(),
                "token": check.token.to_json() if check.token else None,
            },
        },
    )


def check_quiet_partners(
    uow: ExchangeUnit,
    partners: Callable[[], Sequence[Partner]],
    breakers: Callable[[], Mapping[str, BreakerState]],
    calls: PartnerCalls,
    *,
    interval: timedelta,
    limit: int = CHECKS_PER_SWEEP,
) -> list[PartnerCheck]:
    """Check each partner due (``due_for_check``), each recorded as it ends."""
    now = uow.clock()
    heard = calls_since(calls, now - interval)
    due = due_for_check(partners(), breakers(), heard, now, interval=interval, limit=limit)
    timeout = min(uow.retry_policy.call_timeout_seconds, 10.0)
    done = []
    for partner in due:
        at = uow.clock()
        capabilities = uow.client.probe(partner, timeout=timeout)
        token = uow.client.check_token(partner) if capabilities.answered else None
        check = PartnerCheck(partner.id, partner.fhir_base, at, capabilities, token)
        with uow:
            uow.record(check_event(check))
        logger.info(
            "partner checked",
            extra={"partner_id": partner.id, "answered": check.answered},
        )
        done.append(check)
    return done
