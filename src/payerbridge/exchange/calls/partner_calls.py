"""A partner call as the audit trail keeps it (pure): which step and attempt, where it
went, how long it took, and what came back (the HTTP status where one is known).

Each call goes with the event that follows it, at no commit of its own where one follows
anyway: an answer taken, in the detail of the move it allows (``member_matched``,
``received``); a partner that did not answer, in its attempt's event; an answer that
refuses (no match, a consent refusal, a reviewer, an error), in an event of its own
(``exchange.partner-call``), those being the rarer. ``exchange/operations/timeline.py`` reads all
three by the ``call`` key of an event's detail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.types import ExchangeId

__all__ = ["ANSWERED", "REFUSED", "UNAVAILABLE", "PartnerCall", "partner_call_event"]

ANSWERED, REFUSED, UNAVAILABLE = "answered", "refused", "unavailable"


@dataclass(frozen=True)
class PartnerCall:
    """One attempt of a step's call (the calls it made, a refreshed token's retry
    included): ``outcome`` ANSWERED, REFUSED (with the error's name) or UNAVAILABLE."""

    step: str
    attempt: int
    endpoint: str
    at: datetime
    latency_ms: int
    outcome: str
    status: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "attempt": self.attempt,
            "endpoint": self.endpoint,
            "at": self.at.isoformat(),
            "latency_ms": self.latency_ms,
            "outcome": self.outcome,
            "status": self.status,
            "error": self.error,
        }


def partner_call_event(
    exchange_id: ExchangeId, call: PartnerCall, failed_over: Sequence[PartnerCall] = ()
) -> AuditEvent:
    """The event of a call whose answer refused (the move it causes follows it), with
    the calls to endpoints that did not answer before it."""
    tried = {"failed_over": [c.to_json() for c in failed_over]} if failed_over else {}
    return AuditEvent(
        at=call.at,
        actor="payerbridge",
        action="exchange.partner-call",
        entity_type="Exchange",
        entity_id=exchange_id,
        outcome=call.outcome,
        detail={"call": call.to_json(), **tried},
    )
