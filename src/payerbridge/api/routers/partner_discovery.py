"""``POST /partners/$discover``, for operators: register a partner from its HRex
``.well-known/davinci-configuration`` alone (ADR 0061), given by URL or by the Coverage
a member brought from that payer."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from payerbridge.api.deps import OperatorDep
from payerbridge.api.responses import JsonResponse
from payerbridge.api.routers.partners import partner_public
from payerbridge.api.units import PartnersUnitDep
from payerbridge.logging import current_request_id
from payerbridge.routing.discovered import DiscoverPartner, PartnerAccess, discover_partner
from payerbridge.routing.model import DEFAULT_PARTNER_SCOPE, PartnerAuth

__all__ = ["router"]

router = APIRouter(prefix="/partners", default_response_class=JsonResponse, tags=["partners"])


class PartnerDiscover(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    wellknown_url: str | None = Field(
        default=None,
        max_length=500,
        description="The partner's /.well-known/davinci-configuration (HRex); or give coverage.",
    )
    coverage: dict[str, Any] | None = Field(
        default=None,
        description="A member's Coverage from that payer carrying HRex's "
        "extension-CoverageDavinciWellknownLocation, instead of wellknown_url.",
    )
    id: str | None = Field(default=None, max_length=64, description="Unset: from the host.")
    name: str | None = Field(
        default=None,
        max_length=200,
        description="Unset: its CapabilityStatement's publisher (or name), else the host.",
    )
    npi: str | None = Field(
        default=None, description="Needed when the document's identifier is not an NPI."
    )
    auth: Literal["smart", "udap"] | None = None
    client_id: str | None = Field(default=None, max_length=200)
    token_url: str | None = Field(default=None, max_length=500)
    scope: str = Field(default=DEFAULT_PARTNER_SCOPE, max_length=1000)


@router.post(
    "/$discover",
    status_code=201,
    responses={
        200: {"description": "Updated: its endpoints from the document replaced"},
        401: {"description": "No valid access token"},
        403: {"description": "The token lacks the operator scope"},
        422: {"description": "The document could not be read or used (each problem named)"},
    },
)
def discover(
    body: PartnerDiscover, uow: PartnersUnitDep, operator: OperatorDep, response: Response
) -> dict[str, Any]:
    """Read the partner's davinci-configuration, take its payer endpoints (newest PDex
    version first) and its NPI, and register it as ``POST /partners`` does. Nothing is
    stored when the document is not clean or names an endpoint on another origin."""
    auth = PartnerAuth(body.auth) if body.auth else PartnerAuth.NONE
    command = DiscoverPartner(
        operator.client_id,
        wellknown_url=body.wellknown_url,
        coverage=body.coverage,
        id=body.id,
        name=body.name,
        npi=body.npi,
        access=PartnerAccess(auth, body.client_id, body.token_url, body.scope),
        request_id=current_request_id(),
    )
    found = discover_partner(command, uow)
    enrolled = found.enrolled
    if not enrolled.created:
        response.status_code = 200
    response.headers["Location"] = f"/partners/{enrolled.partner.id}"
    public = partner_public(enrolled.partner, capabilities=enrolled.capabilities)
    public["wellknown"] = {
        "location": found.reading.location,
        "identifier": {
            "system": found.reading.identifier_system,
            "value": found.reading.identifier_value,
        },
        "endpoints": dict(found.reading.others),
    }
    if enrolled.unread is not None:
        public["capabilities_unread"] = enrolled.unread
    return public
