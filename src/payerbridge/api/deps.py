"""Dependencies every handler shares: the platform, the calling client, FHIR content rules.

``current_caller`` is the one seam for authentication: every route but the public ones
(``PUBLIC_ROUTES``) takes a dependency built on it, and a test walks the route table to
keep it so. A caller is a registered client with one of our access tokens (SMART
Backend Services, ADR 0009); what it may do is decided by the token's scopes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from payerbridge import big_json
from payerbridge.api.tls import client_certificate
from payerbridge.bootstrap import Platform, utcnow
from payerbridge.consent.model import Requester
from payerbridge.errors import (
    Issue,
    MalformedContent,
    NotAcceptable,
    Unauthenticated,
    UnsupportedMediaType,
)
from payerbridge.security.certificates import certificate_thumbprint
from payerbridge.security.model import (
    AUDITOR_SCOPE,
    EXCHANGES_SCOPE,
    OPERATOR_SCOPE,
    Principal,
    require_scope,
)
from payerbridge.security.service import authenticate
from payerbridge.types import OPERATOR, ClientId

__all__ = [
    "PUBLIC_ROUTES",
    "AuditReaderDep",
    "AuditorDep",
    "Caller",
    "CallerDep",
    "OperatorDep",
    "PlatformDep",
    "SubmitterDep",
    "caller_of",
    "current_platform",
    "fhir_accept",
    "read_json_body",
    "run_store_bound",
]

T = TypeVar("T")

# Routes open to anyone, by design: discovery, the token endpoint, health, the runbooks
# each OperationOutcome links (api/routers/runbooks.py says why).
PUBLIC_ROUTES = frozenset(
    {
        ("GET", "/fhir/metadata"),
        ("GET", "/.well-known/smart-configuration"),
        ("GET", "/fhir/.well-known/smart-configuration"),
        ("GET", "/.well-known/udap"),
        ("GET", "/fhir/.well-known/udap"),
        ("GET", "/.well-known/davinci-configuration"),
        ("POST", "/auth/register"),
        ("GET", "/auth/jwks"),
        ("GET", "/auth/client-jwks"),
        ("POST", "/auth/token"),
        ("GET", "/healthz"),
        ("GET", "/livez"),
        ("GET", "/runbooks"),
        ("GET", "/runbooks/{code}"),
    }
)

_ACCEPTABLE = (
    "application/fhir+json",
    "application/json",
    "application/json+fhir",
    "application/*",
    "*/*",
)
_FORMAT_ALIASES = {"json", "application/json", "application/fhir+json", "application/json+fhir"}
_READABLE = ("application/fhir+json", "application/json", "application/json+fhir")


@dataclass(frozen=True)
class Caller:
    """The client of this request, as its access token names it."""

    principal: Principal

    @property
    def client_id(self) -> ClientId:
        return self.principal.client_id

    @property
    def npi(self) -> str:
        return self.principal.npi

    @property
    def is_operator(self) -> bool:
        return self.principal.is_operator

    @property
    def sees_everyone(self) -> bool:
        """An operator or an auditor: reads every client's exchanges and their audit."""
        return self.principal.is_operator or self.principal.is_auditor

    @property
    def owner(self) -> ClientId:
        """Whose things this caller creates and sees: its own, or for an operator, the
        operators' (which see everyone's)."""
        return OPERATOR if self.is_operator else self.client_id

    def require(self, *scopes: str) -> None:
        require_scope(self.principal, *scopes)

    def as_requester(self) -> Requester:
        return Requester(client_id=self.client_id, npi=self.npi)


def connection_thumbprint(request: Request) -> str | None:
    """The ``x5t#S256`` of the client certificate this connection presented (mutual TLS)."""
    der = client_certificate(request.scope)
    return certificate_thumbprint(der) if der is not None else None


def _bearer(request: Request) -> str:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated(
            "this operation needs an access token",
            issues=[
                Issue(
                    "send Authorization: Bearer <access token> from this server's token "
                    "endpoint (/auth/token, SMART Backend Services)",
                    "Authorization",
                    "login",
                )
            ],
        )
    return token


def caller_of(request: Request) -> Caller:
    """The request's caller, for a handler that is already in its store-bound call; 429
    when the caller is over its rate for this operation."""
    uow = current_platform(request).units.security()
    principal = authenticate(
        _bearer(request),
        verifier=uow.verifier,
        clients=uow.clients,
        now=utcnow(),
        certificate_thumbprint=connection_thumbprint(request),
    )
    route = request.scope.get("route")
    # The route's template: one rate per operation, not per resource id.
    operation = f"{request.method} {route.path if route is not None else request.scope['path']}"
    uow.limiter.take(principal.client_id, operation, now=time.time())
    return Caller(principal)


async def current_caller(request: Request) -> Caller:
    return await run_store_bound(current_platform(request), caller_of, request)


# Async although they wait on nothing: FastAPI runs a sync dependency in a worker thread.
async def require_operator(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
    caller.require(OPERATOR_SCOPE)
    return caller


async def require_submitter(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
    """The plan's own systems: submit exchanges, capture consents, subscribe to webhooks."""
    caller.require(EXCHANGES_SCOPE, OPERATOR_SCOPE)
    return caller


async def require_auditor(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
    """Reads the audit trail: AuditEvent, checkpoints."""
    caller.require(AUDITOR_SCOPE)
    return caller


async def require_audit_reader(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
    """Reads an exchange's audit: its client, an operator or an auditor."""
    caller.require(EXCHANGES_SCOPE, OPERATOR_SCOPE, AUDITOR_SCOPE)
    return caller


def current_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


CallerDep = Annotated[Caller, Depends(current_caller)]
OperatorDep = Annotated[Caller, Depends(require_operator)]
SubmitterDep = Annotated[Caller, Depends(require_submitter)]
AuditorDep = Annotated[Caller, Depends(require_auditor)]
AuditReaderDep = Annotated[Caller, Depends(require_audit_reader)]
PlatformDep = Annotated[Platform, Depends(current_platform)]


async def run_store_bound(platform: Platform, function: Callable[..., T], *args: Any) -> T:
    """Run a short, store-bound call of a hot path: inline on embedded SQLite, in the
    thread pool on PostgreSQL.

    SQLite runs in this process, and a small request's statements take microseconds:
    the hop to a worker thread and back, and the GIL handed between the two threads
    under load, cost more than the work (``bench identity``: about 1.5x the requests
    per second). While a workflow step in this process holds SQLite's write lock, the
    loop waits for it as a request would (milliseconds: the step's one commit).
    PostgreSQL's statements wait on the network, and that wait must not hold up the
    event loop."""
    if platform.settings.is_sqlite:
        return function(*args)
    return await run_in_threadpool(function, *args)


async def fhir_accept(request: Request) -> None:
    """FHIR content negotiation: JSON only (``_format`` wins over ``Accept``).

    Async although it waits on nothing: FastAPI runs a sync dependency in a worker thread,
    a hop that costs more than the check."""
    requested_format = request.query_params.get("_format")
    if requested_format is not None:
        if requested_format.split(";")[0].strip() not in _FORMAT_ALIASES:
            raise NotAcceptable(
                f"_format '{requested_format[:40]}' is not supported; "
                "this server produces application/fhir+json"
            )
        return
    accept = request.headers.get("accept")
    if not accept:
        return
    media_types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if not any(media in _ACCEPTABLE for media in media_types):
        raise NotAcceptable(
            "this server produces application/fhir+json; the Accept header asks for something else"
        )


async def read_json_body(request: Request) -> Any:
    """The request body as JSON, after checking its media type."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _READABLE:
        raise UnsupportedMediaType(
            f"Content-Type '{content_type or 'missing'}' is not supported; send "
            "application/fhir+json"
        )
    body = await request.body()
    try:
        return big_json.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedContent(
            f"the request body is not valid JSON ({exc.msg} at position {exc.pos})"
        ) from exc
