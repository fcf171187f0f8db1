"""Legal holds: a member's, found by our member id; placing one (an operator's) and
releasing one, which the use case allows only to the account that placed it or to
counsel (ADR 0046): the page says who may when it refuses, with the status the API
answers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import RedirectResponse, Response

from payerbridge.compliance.lifecycle import (
    Acting,
    PlaceHold,
    ReleaseHold,
    place_hold,
    release_hold,
)
from payerbridge.compliance.model import Hold
from payerbridge.console.auth import FormDep, IntervenerVisit, ReaderVisit, Visit
from payerbridge.console.pages import NO_FLASH, Flash
from payerbridge.errors import PayerBridgeError

__all__ = ["router"]

router = APIRouter()

MemberQuery = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9.\-]*$")]


@router.get("/holds")
def holds_page(visit: ReaderVisit, member_id: MemberQuery = None) -> Response:
    notice = {"placed": "the hold was placed", "released": "the hold was released"}.get(
        visit.request.query_params.get("done", "")
    )
    return _view(visit, member_id, Flash(notice=notice))


@router.post("/holds")
def place(visit: IntervenerVisit, form: FormDep) -> Response:
    uow, found = visit.platform.units.compliance(), visit.signed_in
    member_id, reason = str(form.get("member_id") or "")[:64], str(form.get("reason") or "")
    try:
        hold = place_hold(PlaceHold(member_id, Acting(found.actor), reason), uow)
    except PayerBridgeError as exc:
        return _view(visit, member_id, Flash.refused(exc))
    return RedirectResponse(f"/console/holds?member_id={hold.member_id}&done=placed", 303)


@router.post("/holds/{hold_id}/release")
def release(hold_id: str, visit: ReaderVisit, form: FormDep) -> Response:
    uow, found = visit.platform.units.compliance(), visit.signed_in
    member_id = str(form.get("member_id") or "")[:64]
    try:
        hold = release_hold(ReleaseHold(hold_id[:64], Acting(found.actor)), uow)
    except PayerBridgeError as exc:
        return _view(visit, member_id, Flash.refused(exc))
    return RedirectResponse(f"/console/holds?member_id={hold.member_id}&done=released", 303)


def _view(visit: Visit, member_id: str | None, flash: Flash = NO_FLASH) -> Response:
    uow, found = visit.platform.units.compliance(), visit.signed_in
    holds: list[Hold] = []
    if member_id:
        with uow:
            holds = uow.lifecycle.holds(uow, member_id)
    context = {
        "member_id": member_id or "",
        "holds": holds,
        "mine": found.actor,
        "counsel": found.actor in uow.holds.counsel,
        "notice": flash.notice,
        "error": flash.error,
    }
    return visit.render("holds.html", context, status_code=flash.status_code)
