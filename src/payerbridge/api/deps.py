"""Dependencies every handler shares: the platform, the calling client, FHIR content rules.

``current_caller`` is the single seam for authentication: SMART Backend Services
(roadmap) replaces its body, and every handler that takes ``CallerDep`` is covered.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from payerbridge.bootstrap import Platform
from payerbridge.consent.model import Requester
from payerbridge.errors import (
    Forbidden,
    Issue,
    MalformedContent,
    NotAcceptable,
    Unauthenticated,
    UnsupportedMediaType,
)
from payerbridge.types import OPERATOR, ClientId

__all__ = [
    "Caller",
    "CallerDep",
    "OperatorDep",
    "PlatformDep",
    "fhir_accept",
    "read_json_body",
    "run_store_bound",
]

T = TypeVar("T")

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
    """Who is calling: anonymous, an operator (the configured operator token), or a
    registered client organization (a credential from ``payerbridge clients add``).
    Until SMART Backend Services lands this dependency is the one place that decides."""

    client_id: ClientId
    is_authenticated: bool
    is_operator: bool = False
    npi: str | None = None  # the client organization's NPI; consents name it

    def as_requester(self) -> Requester:
        if self.npi is None:
            raise Unauthenticated(
                "this operation needs a registered client's bearer credential",
                issues=[
                    Issue(
                        "send Authorization: Bearer <client credential> "
                        "(issued with `payerbridge clients add`)",
                        "Authorization",
                        "login",
                    )
                ],
            )
        return Requester(client_id=self.client_id, npi=self.npi)


def current_caller(request: Request) -> Caller:
    authorization = request.headers.get("authorization")
    if authorization is None:
        return Caller(client_id=ClientId("anonymous"), is_authenticated=False)
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    platform = current_platform(request)
    expected = platform.settings.operator_token
    if scheme.lower() == "bearer" and token:
        if expected is not None and hmac.compare_digest(
            token.encode(), expected.get_secret_value().encode()
        ):
            return Caller(client_id=OPERATOR, is_authenticated=True, is_operator=True)
        client = platform.clients.by_token(token)
        if client is not None:
            return Caller(ClientId(client.client_id), is_authenticated=True, npi=client.npi)
    raise Unauthenticated(
        "the bearer token is not valid",
        issues=[Issue("the Authorization bearer token is not valid", "Authorization", "login")],
    )


def require_operator(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
    if not caller.is_authenticated:
        raise Unauthenticated(
            "this operation needs an operator's bearer token",
            issues=[
                Issue(
                    "send Authorization: Bearer <operator token> (PAYERBRIDGE_OPERATOR_TOKEN)",
                    "Authorization",
                    "login",
                )
            ],
        )
    if not caller.is_operator:
        raise Forbidden("this operation is for operators")
    return caller


def current_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def require_client(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
    """A registered client organization: data access needs to know who is asking."""
    caller.as_requester()
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]
ClientDep = Annotated[Caller, Depends(require_client)]
OperatorDep = Annotated[Caller, Depends(require_operator)]
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
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedContent(
            f"the request body is not valid JSON ({exc.msg} at position {exc.pos})"
        ) from exc
