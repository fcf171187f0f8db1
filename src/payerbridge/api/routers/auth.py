"""The authorization server's public face (SMART Backend Services, ADR 0009): discovery,
the token endpoint and the keys that verify our tokens and our assertions."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from payerbridge.api.deps import PlatformDep, connection_thumbprint
from payerbridge.api.responses import JsonResponse
from payerbridge.api.units import SecurityUnitDep
from payerbridge.bootstrap import Platform, new_id, utcnow
from payerbridge.errors import OAuthErrorCode
from payerbridge.logging import current_request_id
from payerbridge.security.assertions import ASSERTION_ALGORITHMS
from payerbridge.security.model import (
    AUDITOR_SCOPE,
    BULK_MEMBER_MATCH_SCOPES,
    EXCHANGES_SCOPE,
    MEMBER_MATCH_SCOPE,
    OPERATOR_SCOPE,
    OAuthError,
)
from payerbridge.security.udap import B2B_EXTENSION, UDAP_ALGORITHMS, signed_metadata
from payerbridge.security.unit import SecurityUnit

__all__ = ["router"]

router = APIRouter(default_response_class=JsonResponse, tags=["authorization"])

_FORM = "application/x-www-form-urlencoded"
_MAX_FORM_BYTES = 16 * 1024


def smart_configuration(platform: Platform) -> dict[str, Any]:
    base = platform.settings.base_url
    return {
        "issuer": base,
        "jwks_uri": f"{base}/auth/jwks",
        "token_endpoint": f"{base}/auth/token",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": [
            "system/*.rs",
            "system/*.read",
            MEMBER_MATCH_SCOPE,
            BULK_MEMBER_MATCH_SCOPES[0],
            EXCHANGES_SCOPE,
            OPERATOR_SCOPE,
            AUDITOR_SCOPE,
        ],
        "response_types_supported": ["token"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }


@router.get("/.well-known/smart-configuration")
def smart_configuration_at_root(platform: PlatformDep) -> dict[str, Any]:
    return smart_configuration(platform)


@router.get("/fhir/.well-known/smart-configuration")
def smart_configuration_at_fhir_base(platform: PlatformDep) -> dict[str, Any]:
    return smart_configuration(platform)


def udap_metadata(base: str, uow: SecurityUnit) -> dict[str, Any]:
    """UDAP server metadata (FAST Security IG) of the server at ``base``: B2B client
    credentials, registration with a software statement, the hl7-b2b extension required
    in token requests."""
    metadata: dict[str, Any] = {
        "udap_versions_supported": ["1"],
        "udap_profiles_supported": ["udap_dcr", "udap_authn", "udap_authz"],
        "udap_authorization_extensions_supported": [B2B_EXTENSION],
        "udap_authorization_extensions_required": [B2B_EXTENSION],
        "udap_certifications_supported": [],
        "udap_certifications_required": [],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": sorted(uow.tokens.policy.udap_scopes),
        "token_endpoint": f"{base}/auth/token",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(UDAP_ALGORITHMS),
        "registration_endpoint": f"{base}/auth/register",
        "registration_endpoint_jwt_signing_alg_values_supported": list(UDAP_ALGORITHMS),
    }
    if uow.udap_identity is not None:
        metadata["signed_metadata"] = signed_metadata(
            uow.udap_identity,
            issuer=f"{base}/fhir",
            endpoints={
                "token_endpoint": metadata["token_endpoint"],
                "registration_endpoint": metadata["registration_endpoint"],
            },
            now=utcnow(),
            token_id=new_id(),
        )
    return metadata


@router.get("/.well-known/udap")
def udap_at_root(platform: PlatformDep, uow: SecurityUnitDep) -> dict[str, Any]:
    return udap_metadata(platform.settings.base_url, uow)


@router.get("/fhir/.well-known/udap")
def udap_at_fhir_base(platform: PlatformDep, uow: SecurityUnitDep) -> dict[str, Any]:
    return udap_metadata(platform.settings.base_url, uow)


@router.post(
    "/auth/register",
    status_code=201,
    responses={400: {"description": "RFC 7591 error (invalid_software_statement, ...)"}},
)
async def register(request: Request, uow: SecurityUnitDep) -> Response:
    """UDAP dynamic client registration: ``{"software_statement": JWT, "udap": "1"}``."""
    _limit_by_address(request, uow)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise OAuthError(
            OAuthErrorCode.INVALID_CLIENT_METADATA, "send the registration as application/json"
        )
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES * 4:
        raise OAuthError(OAuthErrorCode.INVALID_CLIENT_METADATA, "the registration is too large")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OAuthError(
            OAuthErrorCode.INVALID_CLIENT_METADATA, "the registration is not JSON"
        ) from exc
    client = await run_in_threadpool(
        uow.tokens.register_udap, document, now=utcnow(), request_id=current_request_id()
    )
    registered: dict[str, Any] = {
        "client_id": client.client_id,
        "software_statement": document["software_statement"],
        "client_name": client.name,
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(sorted(client.scopes)),
        # RFC 7591 allows more members: how the organization (NPI) is bound (ADR 0026).
        "organization_status": "awaiting_approval" if client.is_awaiting_approval else "bound",
    }
    if client.is_awaiting_approval:
        registered["organization_status_description"] = (
            "the certificate does not carry the NPI the software statement claims; no "
            "token is issued until an operator of this server approves the pairing"
        )
    return JsonResponse(
        registered,
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


@router.get("/auth/jwks")
def access_token_keys(uow: SecurityUnitDep) -> dict[str, Any]:
    """The public keys that verify the access tokens we issue."""
    return uow.tokens.keys.current(utcnow()).public_jwks()


@router.get("/auth/client-jwks")
def client_assertion_keys(uow: SecurityUnitDep) -> dict[str, Any]:
    """The public key of the assertions we sign to partners' token endpoints: what a
    partner registers for us (by this URL or inline)."""
    return uow.client_jwks


def _limit_by_address(request: Request, uow: SecurityUnit) -> None:
    """The public endpoints that check signatures are limited by the caller's address
    (there is no client yet): 429 with Retry-After, as for authenticated clients. Behind
    a proxy every caller has the proxy's address; limit there too."""
    address = request.client.host if request.client is not None else "unknown"
    operation = f"{request.method} {request.url.path}"
    uow.limiter.take(f"address:{address}", operation, now=time.time())


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != _FORM:
        raise OAuthError(
            OAuthErrorCode.INVALID_REQUEST, f"the token request must be sent as {_FORM}"
        )
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise OAuthError(OAuthErrorCode.INVALID_REQUEST, "the token request is too large")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError(
            OAuthErrorCode.INVALID_REQUEST, "the token request body is not a valid form"
        ) from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:  # RFC 6749 3.2: a parameter MUST NOT be sent twice
            raise OAuthError(
                OAuthErrorCode.INVALID_REQUEST, f"parameter {name} is sent more than once"
            )
        form[name] = value
    return form


@router.post(
    "/auth/token",
    responses={
        400: {"description": "OAuth error (invalid_request, invalid_scope, ...)"},
        401: {"description": "OAuth invalid_client"},
    },
)
async def token(request: Request, uow: SecurityUnitDep) -> Response:
    """SMART Backend Services: ``client_credentials`` with a ``private_key_jwt`` assertion."""
    _limit_by_address(request, uow)
    form = await _form(request)
    grant = await run_in_threadpool(
        uow.tokens.grant,
        form,
        now=utcnow(),
        request_id=current_request_id(),
        certificate_thumbprint=connection_thumbprint(request),
    )
    return JsonResponse(
        grant.as_json(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
    )
