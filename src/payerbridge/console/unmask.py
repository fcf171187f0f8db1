"""Break-glass (ADR 0038, ADR 0046): the console masks members' identifiers; an operator
whose role may see them asks here for a grant, in their own name, for a reason and a few
minutes. Where the plan asks a second person, the grant waits here for another such
operator's approval (the requests waiting are listed, each with its approve button)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

from payerbridge.console.auth import FormDep, ReaderVisit, Visit, safe_next
from payerbridge.console.pages import NO_FLASH, Flash
from payerbridge.errors import InvalidInput, PayerBridgeError
from payerbridge.security.break_glass import (
    MAX_MINUTES,
    ApproveUnmasking,
    AskUnmasking,
    approve_unmasking,
    grant_unmasking,
    pending_requests,
)

__all__ = ["router"]

router = APIRouter()


@router.get("/unmask")
def unmask_form(visit: ReaderVisit) -> Response:
    query = visit.request.query_params
    notice = {
        "requested": "your request waits for another operator's approval",
        "approved": "the request was approved",
    }.get(query.get("done", ""))
    return _form(visit, query.get("next"), flash=Flash(notice=notice))


@router.post("/unmask")
def unmask(visit: ReaderVisit, form: FormDep) -> Response:
    uow, found = visit.platform.units.operators(), visit.signed_in
    next_page = safe_next(str(form.get("next") or ""))
    reason = str(form.get("reason") or "")
    try:
        minutes = _minutes(form.get("minutes"))
        grant = grant_unmasking(AskUnmasking(found, reason, minutes), uow)
    except PayerBridgeError as exc:
        return _form(visit, next_page, reason, Flash.refused(exc))
    if grant.is_pending:
        return RedirectResponse("/console/unmask?done=requested", status_code=303)
    return RedirectResponse(next_page, status_code=303)


@router.post("/unmask/{grant_id}/approve")
def approve(grant_id: str, visit: ReaderVisit, _checked: FormDep) -> Response:
    try:
        asked = ApproveUnmasking(visit.signed_in, grant_id)
        approve_unmasking(asked, visit.platform.units.operators())
    except PayerBridgeError as exc:
        return _form(visit, None, flash=Flash.refused(exc))
    return RedirectResponse("/console/unmask?done=approved", status_code=303)


def _minutes(value: object) -> int:
    try:
        return int(str(value))
    except ValueError as exc:
        raise InvalidInput(f"minutes is a whole number from 1 to {MAX_MINUTES}") from exc


def _form(
    visit: Visit, next_page: str | None, reason: str = "", flash: Flash = NO_FLASH
) -> Response:
    uow, found = visit.platform.units.operators(), visit.signed_in
    policy = uow.break_glass
    context = {
        "next": safe_next(next_page),
        "reason": reason,
        "max_minutes": MAX_MINUTES,
        "may_break_glass": policy.refusal(found.operator.role) is None,
        "needs_approval": policy.needs_approval,
        "requests": pending_requests(uow) if policy.needs_approval else (),
        "notice": flash.notice,
        "error": flash.error,
    }
    return visit.render("unmask.html", context, status_code=flash.status_code)
