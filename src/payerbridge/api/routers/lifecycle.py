"""The data lifecycle for operators (ADR 0038): a member's legal holds, their release,
and a member's erasure (refused with ``legal-hold-active`` while a hold stands). The
same use cases as ``payerbridge members …``; each is audited in the caller's name.

The principal that acts is the client the token names (``api:<client id>``); ``by`` is
the person it says acts, recorded beside it. A hold is released only by the client that
placed it or by counsel (ADR 0046): 403 ``forbidden`` otherwise, saying who may."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from payerbridge.api.deps import Caller, OperatorDep
from payerbridge.api.responses import JsonResponse
from payerbridge.api.units import ComplianceUnitDep
from payerbridge.compliance.lifecycle import (
    Acting,
    EraseMember,
    PlaceHold,
    ReleaseHold,
    erase_member,
    place_hold,
    release_hold,
)
from payerbridge.compliance.model import Hold
from payerbridge.timestamps import utc_iso

__all__ = ["router"]

router = APIRouter(prefix="/lifecycle", default_response_class=JsonResponse, tags=["lifecycle"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    by: str = Field(min_length=1, max_length=200, description="The person acting.")


class WithReason(_Body):
    reason: str = Field(min_length=1, max_length=500, description="Why; no member data.")


def _acting(operator: Caller, body: _Body) -> Acting:
    return Acting(f"api:{operator.client_id}", body.by)


def _hold(hold: Hold) -> dict[str, Any]:
    return {
        "id": hold.id,
        "member_id": hold.member_id,
        "reason": hold.reason,
        "placed_by": hold.placed_by,
        "placed_by_principal": hold.placed_by_principal,
        "placed_at": utc_iso(hold.placed_at),
        "released_by": hold.released_by,
        "released_at": utc_iso(hold.released_at) if hold.released_at else None,
    }


@router.get("/members/{member_id}/holds")
def member_holds(member_id: str, uow: ComplianceUnitDep, _operator: OperatorDep) -> dict[str, Any]:
    with uow:
        holds = uow.lifecycle.holds(uow, member_id[:64])
    return {"member_id": member_id[:64], "holds": [_hold(h) for h in holds]}


@router.post("/members/{member_id}/holds", status_code=201)
def hold_member(
    member_id: str,
    body: WithReason,
    response: Response,
    uow: ComplianceUnitDep,
    operator: OperatorDep,
) -> dict[str, Any]:
    hold = place_hold(PlaceHold(member_id, _acting(operator, body), body.reason), uow)
    response.headers["Location"] = f"/lifecycle/members/{quote(hold.member_id)}/holds"
    return _hold(hold)


@router.post("/holds/{hold_id}/$release")
def release(hold_id: str, body: _Body, uow: ComplianceUnitDep, operator: OperatorDep) -> Any:
    hold = release_hold(ReleaseHold(hold_id[:64], _acting(operator, body)), uow)
    return _hold(hold)


@router.post("/members/{member_id}/$erase")
def erase(
    member_id: str, body: WithReason, uow: ComplianceUnitDep, operator: OperatorDep
) -> dict[str, Any]:
    command = EraseMember(member_id, _acting(operator, body).label, body.reason)
    removed = erase_member(command, uow)
    return {"member_id": member_id.strip(), "removed": dict(removed)}
