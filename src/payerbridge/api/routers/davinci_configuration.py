"""Our HRex endpoint discovery document, ``/.well-known/davinci-configuration`` (ADR 0061):
public by design, as partners and X12 271 readers fetch it before they hold a token.
Cached by ETag: the same configuration and software give the same bytes and tag."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Header
from starlette.responses import Response

from payerbridge import __version__
from payerbridge.api.deps import PlatformDep
from payerbridge.routing.wellknown import WELLKNOWN_PATH, document_etag, our_wellknown

__all__ = ["router"]

router = APIRouter(tags=["authorization"])

# Partners re-read it daily at most; an hour keeps a change of ours from waiting long.
_MAX_AGE_SECONDS = 3600


@router.get(
    WELLKNOWN_PATH,
    responses={
        200: {"description": "HRex davinci-configuration: our NPI and our endpoints"},
        304: {"description": "Unchanged since the ETag given in If-None-Match"},
    },
)
def davinci_configuration(
    platform: PlatformDep, if_none_match: str | None = Header(default=None)
) -> Response:
    settings = platform.settings
    document = our_wellknown(settings.org_npi, settings.base_url, settings.pdex_version)
    body = orjson.dumps(document)
    etag = document_etag(body, __version__)
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={_MAX_AGE_SECONDS}"}
    if if_none_match is not None and _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 13.1.2: ``*`` or any listed tag, compared weakly (W/ ignored)."""
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags
