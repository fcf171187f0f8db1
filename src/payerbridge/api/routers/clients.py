"""Clients of our authorization server, for operators: register one with its public keys
(a JWK Set inline or its URL) and the scopes it may ask for, list them, approve the NPI a
UDAP client claimed when its certificate does not carry it, revoke one (its tokens stop
working at once). No secret is issued or kept."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from payerbridge.api.deps import OperatorDep, PlatformDep
from payerbridge.api.responses import JsonResponse
from payerbridge.api.units import SecurityUnitDep
from payerbridge.errors import NotFound
from payerbridge.security.model import (
    AddClient,
    ApproveOrganization,
    ClientKeys,
    RegisteredClient,
    RevokeClient,
)
from payerbridge.security.registration import smart_client
from payerbridge.security.registry import add_client, approve_organization, revoke_client
from payerbridge.timestamps import utc_iso
from payerbridge.types import ClientId

__all__ = ["client_public", "router"]

router = APIRouter(prefix="/clients", default_response_class=JsonResponse, tags=["clients"])

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid access token"},
    403: {"description": "The token lacks the operator scope"},
}


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    npi: str
    scope: str = Field(
        min_length=1, max_length=2000, description="Space-delimited scopes it may ask for."
    )
    jwks: dict[str, Any] | None = Field(default=None, description="Its public keys, inline.")
    jwks_url: str | None = Field(default=None, max_length=500, description="Or their URL.")


class OrganizationApproval(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    npi: str = Field(description="The NPI the client claims, named again by the operator.")


def client_public(client: RegisteredClient) -> dict[str, Any]:
    return {
        "id": client.client_id,
        "name": client.name,
        "npi": client.npi,
        "npi_evidence": client.npi_evidence.value,
        "npi_vouched_by": client.npi_vouched_by,
        "npi_vouched_at": utc_iso(client.npi_vouched_at) if client.npi_vouched_at else None,
        "kind": client.kind.value,
        "scope": " ".join(sorted(client.scopes)),
        "jwks_url": client.jwks_url,
        "key_ids": [key.get("kid") for key in (client.jwks or {}).get("keys", [])],
        "revoked_at": utc_iso(client.revoked_at) if client.revoked_at else None,
    }


@router.post("", status_code=201, responses={409: {"description": "Id taken"}, **_AUTH_ERRORS})
def register_client(
    body: ClientCreate, platform: PlatformDep, uow: SecurityUnitDep, operator: OperatorDep
) -> dict[str, Any]:
    """Register a SMART Backend Services client with its public keys and allowed scopes."""
    client = smart_client(
        body.id, body.name, body.npi, body.scope, ClientKeys(jwks=body.jwks, jwks_url=body.jwks_url)
    )
    if client.jwks_url is not None:
        platform.check_jwks_url(client.jwks_url)
    stored = add_client(AddClient(client, operator.client_id), uow)
    return client_public(stored)


@router.get("", responses=_AUTH_ERRORS)
def list_clients(uow: SecurityUnitDep, _operator: OperatorDep) -> list[dict[str, Any]]:
    return [client_public(client) for client in uow.clients.list()]


@router.get("/{client_id}", responses={404: {"description": "No such client"}, **_AUTH_ERRORS})
def get_client(client_id: str, uow: SecurityUnitDep, _operator: OperatorDep) -> dict[str, Any]:
    client = uow.clients.get(ClientId(client_id))
    if client is None:
        raise NotFound(f"no client is registered with id '{client_id[:200]}'")
    return client_public(client)


@router.post(
    "/{client_id}/$approve-organization",
    responses={
        404: {"description": "No such client"},
        409: {"description": "Its NPI is bound already"},
        **_AUTH_ERRORS,
    },
)
def approve(
    client_id: str, body: OrganizationApproval, uow: SecurityUnitDep, operator: OperatorDep
) -> dict[str, Any]:
    """Approve the pairing of a waiting UDAP client with the NPI it claims (its
    certificate does not carry it): it may then get tokens. Recorded and audited."""
    client = approve_organization(
        ApproveOrganization(ClientId(client_id), body.npi, operator.client_id), uow
    )
    return client_public(client)


@router.post(
    "/{client_id}/$revoke", responses={404: {"description": "No such client"}, **_AUTH_ERRORS}
)
def revoke(client_id: str, uow: SecurityUnitDep, operator: OperatorDep) -> dict[str, Any]:
    """Revoke now: the client's tokens stop working on their next use."""
    revoke_client(RevokeClient(ClientId(client_id), operator.client_id), uow)
    found = uow.clients.get(ClientId(client_id))
    assert found is not None
    return client_public(found)
