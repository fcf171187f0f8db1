"""Partners from a directory bundle (ADR 0062), for operators: import an NDH / PDex mTLS
Bundle, list what the imports hold, approve or reject it. Included before the partners'
router: ``/partners/proposals`` is not a partner's id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from payerbridge.api.deps import OperatorDep, current_platform, read_json_body
from payerbridge.api.responses import JsonResponse
from payerbridge.api.routers.partners import partner_public
from payerbridge.clock import utcnow
from payerbridge.logging import current_request_id
from payerbridge.routing.directory_import import (
    DirectoryImported,
    ImportDirectory,
    import_directory,
)
from payerbridge.routing.directory_proposals import (
    SettleProposal,
    approve_proposal,
    reject_proposal,
)
from payerbridge.routing.enrolment import Enrolled
from payerbridge.routing.ports import ProposalStatus
from payerbridge.routing.unit import DirectoryUnit

__all__ = ["router"]

router = APIRouter(prefix="/partners", default_response_class=JsonResponse, tags=["partners"])

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid access token"},
    403: {"description": "The token lacks the operator scope"},
}
_STALE: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such proposal"},
    409: {"description": "Settled already, superseded, or its partner changed since (stale)"},
}


class ApprovalIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    client_id: str | None = Field(
        default=None,
        max_length=200,
        description="Our client id at the partner's authorization server (SMART), which "
        "no directory says; unset: none, or UDAP's registration.",
    )
    note: str | None = Field(default=None, max_length=500)


class RejectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: str | None = Field(default=None, max_length=500)


def _directory(request: Request) -> DirectoryUnit:
    return current_platform(request).units.directory()


@router.post(
    "/$import",
    responses={
        400: {"description": "The body is not JSON"},
        415: {"description": "Not application/fhir+json"},
        422: {"description": "Not a Bundle, or it describes no payer we can import"},
        **_AUTH_ERRORS,
    },
)
async def import_bundle(
    request: Request,
    operator: OperatorDep,
    name: Annotated[
        str,
        Query(
            min_length=1,
            max_length=100,
            description="The directory's name when the Bundle has no identifier.",
        ),
    ] = "http-import",
) -> dict[str, Any]:
    """Operators only: an NDH-style Bundle (``Organization``, ``OrganizationAffiliation``,
    ``Endpoint``) as ``application/fhir+json``. Endpoint changes apply at once; a new
    partner, another NPI or a change of UDAP is held as a proposal. The answer says, per
    organization, ``updated``, ``unchanged``, ``created-pending``, ``pending`` or
    ``skipped`` with why, and every defect by its entry."""
    document = await read_json_body(request)
    command = ImportDirectory(document, name, utcnow(), operator.client_id, current_request_id())
    done: DirectoryImported = await run_in_threadpool(
        import_directory, command, _directory(request)
    )
    return done.to_json()


@router.get("/proposals", responses=_AUTH_ERRORS)
def list_proposals(
    request: Request,
    _operator: OperatorDep,
    every: Annotated[bool, Query(alias="all", description="Settled ones too.")] = False,
) -> dict[str, Any]:
    """Operators only: what directory imports hold, pending ones (all with ``all``),
    newest first."""
    status = None if every else ProposalStatus.PENDING
    proposals = _directory(request).proposals.list(status)
    return {"proposals": [p.to_json() for p in proposals]}


@router.post("/proposals/{proposal_id}/$approve", responses={**_STALE, **_AUTH_ERRORS})
def approve(
    proposal_id: str, request: Request, operator: OperatorDep, body: ApprovalIn | None = None
) -> dict[str, Any]:
    """Operators only: register what the proposal holds, as ``POST /partners`` would (a
    new partner is read, a UDAP one registered with); the partner as stored."""
    asked = body or ApprovalIn()
    command = SettleProposal(
        proposal_id, operator.client_id, current_request_id(), asked.client_id, asked.note
    )
    enrolled: Enrolled = approve_proposal(command, _directory(request))
    public = partner_public(enrolled.partner, capabilities=enrolled.capabilities)
    if enrolled.unread is not None:
        public["capabilities_unread"] = enrolled.unread
    return {"proposal_id": proposal_id, "created": enrolled.created, "partner": public}


@router.post("/proposals/{proposal_id}/$reject", responses={**_STALE, **_AUTH_ERRORS})
def reject(
    proposal_id: str, request: Request, operator: OperatorDep, body: RejectionIn | None = None
) -> dict[str, Any]:
    """Operators only: keep the partner as it is; the same entry is not proposed again."""
    note = body.note if body else None
    command = SettleProposal(proposal_id, operator.client_id, current_request_id(), note=note)
    return reject_proposal(command, _directory(request)).to_json()
