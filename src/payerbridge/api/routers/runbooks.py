"""The runbooks, served by the platform itself: ``/runbooks`` (the index) and
``/runbooks/{code}``, each page its Markdown as plain text.

Public, as ``/fhir/metadata`` is: each OperationOutcome links its runbook, and whoever
reads the outcome (a partner's engineer, our operator on a closed network without the
repository) must be able to follow the link without an account. A page holds nothing
but the released documentation: no member data, no configuration, no secret.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse

from payerbridge.api.deps import PlatformDep
from payerbridge.api.runbooks import INDEX, RunbookShelf, default_runbooks_dir

__all__ = ["router"]

router = APIRouter(prefix="/runbooks", tags=["runbooks"])

_HEADERS = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}
_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"text/plain": {}}, "description": "The runbook's Markdown"},
}


@router.get("", response_class=PlainTextResponse, responses=_RESPONSES)
async def runbook_index(platform: PlatformDep) -> PlainTextResponse:
    """Every runbook, by family."""
    return await _served(platform, INDEX)


@router.get("/{code}", response_class=PlainTextResponse, responses=_RESPONSES)
async def runbook(code: str, platform: PlatformDep) -> PlainTextResponse:
    """The runbook of one reason code: what it means, how to confirm it, what to do, when
    to escalate. 404 for a code payerbridge does not emit."""
    return await _served(platform, code)


async def _served(platform: PlatformDep, code: str) -> PlainTextResponse:
    shelf = RunbookShelf(platform.settings.runbooks_dir or default_runbooks_dir())
    text = await run_in_threadpool(shelf.page, code)
    return PlainTextResponse(text, headers=_HEADERS)
