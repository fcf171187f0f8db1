"""The link a finished exchange's webhook carries to what it received (ADR 0052): checked
here (signed by this platform for this exchange, not expired, asked by the plan's own
organization with a token that reads Patients), then answered with the member's
``$everything``, where the read is decided, labelled and audited as every other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import RedirectResponse

from payerbridge.api.deps import CallerDep, PlatformDep
from payerbridge.api.units import ExchangeUnitDep
from payerbridge.bootstrap import utcnow
from payerbridge.consent.model import is_own_organization
from payerbridge.errors import Forbidden, Issue, NotFound
from payerbridge.exchange.model import DATA_ENDS
from payerbridge.security.model import resource_scope
from payerbridge.types import ExchangeId
from payerbridge.wiring.security import received_links

__all__ = ["router"]

router = APIRouter(prefix="/exchanges", tags=["exchanges"])


@dataclass(frozen=True)
class SignedLink:
    """The link's query, as the webhook gave it."""

    expires: str  # unix seconds
    signature: str  # hex HMAC-SHA256


@router.get("/{exchange_id}/received", status_code=303)
def received_record(
    exchange_id: str,
    link: Annotated[SignedLink, Depends()],
    platform: PlatformDep,
    caller: CallerDep,
    uow: ExchangeUnitDep,
) -> RedirectResponse:
    """303 to the member's ``$everything`` for the plan's own organization holding a link
    this platform signed for this exchange; 403 for anyone else or another link, 410 once
    it has expired, 404 for an exchange that holds no received record."""
    caller.require(resource_scope("Patient", "r"))
    settings = platform.settings
    if not is_own_organization(caller.as_requester(), settings.org_npi):
        text = "only the plan's own organization reads a received record by its link"
        raise Forbidden(text, issues=[Issue(text, "Authorization", "forbidden")])
    links = received_links(settings)
    if links is None:
        raise NotFound("received-record links are turned off here")
    links.check(exchange_id, link.expires, link.signature, utcnow())
    record = uow.exchanges.get(ExchangeId(exchange_id))
    if record.state not in DATA_ENDS or not record.imported_patient_id:
        raise NotFound(f"exchange {exchange_id[:64]} holds no received record")
    everything = f"{settings.base_url}/fhir/Patient/{record.imported_patient_id}/$everything"
    return RedirectResponse(everything, status_code=303)
