"""Dependencies every handler shares: the platform, the calling client, FHIR content rules.

``current_caller`` is the single seam for authentication: SMART Backend Services
(roadmap) replaces its body, and every handler that takes ``CallerDep`` is covered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request

from payerbridge.bootstrap import Platform
from payerbridge.errors import MalformedContent, NotAcceptable, UnsupportedMediaType
from payerbridge.types import ClientId

__all__ = ["Caller", "CallerDep", "PlatformDep", "fhir_accept", "read_json_body"]

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
    """Who is calling. Until SMART Backend Services lands every caller is the local operator."""

    client_id: ClientId
    is_authenticated: bool


def current_caller(request: Request) -> Caller:
    return Caller(client_id=ClientId("anonymous"), is_authenticated=False)


def current_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


CallerDep = Annotated[Caller, Depends(current_caller)]
PlatformDep = Annotated[Platform, Depends(current_platform)]


def fhir_accept(request: Request) -> None:
    """FHIR content negotiation: JSON only (``_format`` wins over ``Accept``)."""
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

