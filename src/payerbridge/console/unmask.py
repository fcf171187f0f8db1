"""Break-glass (ADR 0038, ADR 0046): the console masks members' identifiers; an operator
whose role may see them asks here for a grant, in their own name, for a reason and a few
minutes. Where the plan asks a second person, the grant waits here for another such
operator's approval (the requests waiting are listed, each with its approve button)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from payerbridge.console.auth import FormDep, PlatformDep, ReaderDep, safe_next
from payerbridge.console.pages import render
from payerbridge.errors import InvalidInput, PayerBridgeError
from payerbridge.fhir.outcome import rendering_for
from payerbridge.security.break_glass import (
    MAX_MINUTES,
    approve_unmasking,
    grant_unmasking,
    pending_requests,
)
from payerbridge.security.operator_accounts import SignedIn

__all__ = ["router"]

router = APIRouter()


@router.get("/unmask")
def unmask_form(request: Request, platform: PlatformDep, found: ReaderDep) -> Response:
    notice = {
        "requested": "your request waits for another operator's approval",
        "approved": "the request was approved",
    }.get(request.query_params.get("done", ""))
    return _form(
        request, platform, found, next_page=request.query_params.get("next"), notice=notice
    )


@router.post("/unmask")
def unmask(request: Request, platform: PlatformDep, found: ReaderDep, form: FormDep) -> Response:
    next_page = safe_next(str(form.get("next") or ""))
    reason = str(form.get("reason") or "")
    try:
        minutes = _minutes(form.get("minutes"))
        grant = grant_unmasking(platform.operators, found, reason=reason, minutes=minutes)
    except PayerBridgeError as exc:
        return _form(
            request,
            platform,
            found,
            next_page=next_page,
            reason=reason,
            error=exc.text,
            status_code=rendering_for(exc).status,
        )
    if grant.is_pending:
        return RedirectResponse("/console/unmask?done=requested", status_code=303)
    return RedirectResponse(next_page, status_code=303)


@router.post("/unmask/{grant_id}/approve")
def approve(
    grant_id: str, request: Request, platform: PlatformDep, found: ReaderDep, _checked: FormDep
) -> Response:
    try:
        approve_unmasking(platform.operators, found, grant_id)
    except PayerBridgeError as exc:
        return _form(
            request,
            platform,
            found,
            next_page=None,
            error=exc.text,
            status_code=rendering_for(exc).status,
        )
    return RedirectResponse("/console/unmask?done=approved", status_code=303)


def _minutes(value: object) -> int:
    try:
        return int(str(value))
    except ValueError as exc:
        raise InvalidInput(f"minutes is a whole number from 1 to {MAX_MINUTES}") from exc


def _form(
    request: Request,
    platform: PlatformDep,
    found: SignedIn,
    *,
    next_page: str | None,
    reason: str = "",
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    policy = platform.operators.break_glass
    context = {
        "next": safe_next(next_page),
        "reason": reason,
        "max_minutes": MAX_MINUTES,
        "may_break_glass": policy.refusal(found.operator.role) is None,
        "needs_approval": policy.needs_approval,
        "requests": pending_requests(platform.operators) if policy.needs_approval else (),
        "notice": notice,
        "error": error,
    }
    return render(request, found, "unmask.html", context, status_code=status_code)
