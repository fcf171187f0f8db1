"""The member's opt-in decided again before each hop of an exchange (``$member-match``,
then the data), its audited decision committed with the move it allows, or with the
block it causes: nothing leaves without a decision that permits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from payerbridge.audit.model import AuditEvent
from payerbridge.consent.model import DenyReason, OutboundRequest, Requester, StoredConsent
from payerbridge.consent.service import authorize_request
from payerbridge.exchange.model import ExchangeRecord, Move
from payerbridge.exchange.moves import SYSTEM_ACTOR, Blocking, StepResult, block
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.routing.model import Partner
from payerbridge.types import ClientId, ExchangeId

__all__ = ["ConsentCheck", "check_consent", "refused"]


@dataclass(frozen=True)
class ConsentCheck:
    """The member's opt-in re-checked before a hop: the consent when it permits the hop,
    else why not; ``event`` is the audited decision, to commit with what follows."""

    consent: StoredConsent | None
    event: AuditEvent
    reason: str
    text: str
    hop: str


def check_consent(
    uow: ExchangeUnit,
    record: ExchangeRecord,
    partner: Partner,
    hop: str,
    *,
    read: StoredConsent | None = None,
) -> ConsentCheck:
    """Re-check the member's opt-in before this hop. Denied: the caller blocks the
    exchange with the reason (``revoked``, ``expired``, ...) and sends nothing.

    ``read``: the opt-in as this run read it for the hop before, decided again now. An
    opt-in changes only when it is revoked, and its revocation blocks the exchange in
    the same transaction, so the commit that carries this decision finds the exchange
    moved (IllegalTransition) as surely as a fresh read would have found it revoked."""
    if read is not None:
        stored: StoredConsent | None = read
    else:
        stored = uow.consents.get(record.consent_id) if record.consent_id else None
    disclosure = authorize_request(
        stored,
        OutboundRequest(
            consent_id=record.consent_id,
            partner_npi=partner.npi,
            us=Requester(ClientId(SYSTEM_ACTOR), uow.us.npi),
            at=uow.clock(),
            hop=hop,
        ),
    )
    decision = disclosure.decision
    permitted = stored if decision.permitted else None
    reason = (decision.reason or DenyReason.NO_CONSENT).value
    # Named with the exchange it decided for: its audit timeline finds it so.
    event = replace(disclosure.event, detail={**disclosure.event.detail, "exchange_id": record.id})
    return ConsentCheck(permitted, event, reason, decision.text, hop)


def refused(
    uow: ExchangeUnit,
    exchange_id: ExchangeId,
    check: ConsentCheck,
    *,
    before: Sequence[Move] = (),
) -> StepResult:
    """→ ``blocked`` because our consent check refused the hop, with that decision."""
    detail = {"hop": check.hop}
    return block(uow, exchange_id, Blocking(check.reason, check.text, detail, before, check.event))
