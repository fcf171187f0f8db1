"""Client organizations allowed to call our FHIR API (old-payer side), for operators.

Each gets a bearer credential, shown once. SMART Backend Services replaces this later;
handlers see a client only through ``api.deps.current_caller``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from payerbridge.api.deps import OperatorDep, PlatformDep
from payerbridge.api.responses import JsonResponse
from payerbridge.bootstrap import utcnow
from payerbridge.errors import InvalidInput, Issue
from payerbridge.npi import is_valid_npi
from payerbridge.routing.model import ApiClient

__all__ = ["router"]

router = APIRouter(prefix="/clients", default_response_class=JsonResponse, tags=["clients"])


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
    name: str = Field(min_length=1, max_length=200)
    npi: str


@router.post("", status_code=201)
def register_client(
    body: ClientCreate, platform: PlatformDep, operator: OperatorDep
) -> dict[str, Any]:
    """Register a requesting payer; the answer carries its credential, never shown again."""
    if not is_valid_npi(body.npi):
        raise InvalidInput(
            "npi must be a 10-digit NPI with a valid check digit",
            issues=[Issue("npi must be a 10-digit NPI with a valid check digit", "npi")],
        )
    token = platform.clients.register(
        ApiClient(body.id, body.name, body.npi), at=utcnow(), actor=operator.client_id
    )
    return {"id": body.id, "name": body.name, "npi": body.npi, "credential": token}
