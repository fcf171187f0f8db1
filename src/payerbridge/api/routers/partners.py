"""Partner registration: which payers we exchange with and where their FHIR API lives."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from payerbridge.api.deps import CallerDep, PlatformDep
from payerbridge.api.responses import JsonResponse
from payerbridge.errors import NotFound
from payerbridge.exchange.breaker import BreakerState
from payerbridge.logging import current_request_id
from payerbridge.routing.model import Partner, validate_partner
from payerbridge.timestamps import utc_iso
from payerbridge.types import PartnerId

__all__ = ["router"]

router = APIRouter(prefix="/partners", default_response_class=JsonResponse, tags=["partners"])


class PartnerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(max_length=64)
    name: str = Field(max_length=200)
    npi: str
    base_url: str = Field(max_length=500, description="The partner's FHIR base URL.")
    credential: SecretStr | None = Field(
        default=None,
        max_length=500,
        description="The bearer credential the partner issued to us; never shown again.",
    )


def partner_public(partner: Partner, breaker: BreakerState | None = None) -> dict[str, Any]:
    """The partner and, where known, the circuit breaker of its FHIR endpoint."""
    state = breaker or BreakerState()
    return {
        "id": partner.id,
        "name": partner.name,
        "npi": partner.npi,
        "base_url": partner.base_url,
        "has_credential": partner.credential is not None,
        "breaker": {
            "status": state.status.value,
            "consecutive_failures": state.consecutive_failures,
            "open_until": utc_iso(state.open_until) if state.open_until else None,
        },
    }


@router.post("", status_code=201)
def register_partner(
    body: PartnerCreate, platform: PlatformDep, caller: CallerDep, response: Response
) -> dict[str, Any]:
    credential = body.credential.get_secret_value() if body.credential else None
    partner = Partner(PartnerId(body.id), body.name, body.npi, body.base_url, credential)
    validate_partner(partner)
    created = platform.partners.register(
        partner, actor=caller.client_id, request_id=current_request_id()
    )
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/partners/{partner.id}"
    return partner_public(platform.partners.get(partner.id) or partner)


@router.get("")
def list_partners(platform: PlatformDep, _caller: CallerDep) -> list[dict[str, Any]]:
    breakers = platform.breakers.all()
    return [partner_public(p, breakers.get(p.fhir_base)) for p in platform.partners.list()]


@router.get("/{partner_id}")
def get_partner(partner_id: str, platform: PlatformDep, _caller: CallerDep) -> dict[str, Any]:
    partner = platform.partners.get(PartnerId(partner_id))
    if partner is None:
        raise NotFound(f"no partner is registered with id '{partner_id[:64]}'")
    return partner_public(partner, platform.breakers.get(partner.fhir_base))
