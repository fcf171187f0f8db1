"""Break-glass (ADR 0038): the console masks members' identifiers; an operator who must
see them asks here for a grant, in their own name, for a reason and a few minutes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from payerbridge.console.auth import FormDep, PlatformDep, ReaderDep, safe_next
from payerbridge.console.pages import render
from payerbridge.errors import InvalidInput, PayerBridgeError
from payerbridge.fhir.outcome import rendering_for
from payerbridge.security.break_glass import MAX_MINUTES, grant_unmasking
from payerbridge.security.operator_accounts import SignedIn

__all__ = ["router"]

router = APIRouter()


@router.get("/unmask")
def unmask_form(request: Request, found: ReaderDep) -> Response:
    return _form(request, found, next_page=request.query_params.get("next"))


@router.post("/unmask")
def unmask(request: Request, platform: PlatformDep, found: ReaderDep, form: FormDep) -> Response:
    next_page = safe_next(str(form.get("next") or ""))
    reason = str(form.get("reason") or "")
    try:
        minutes = _minutes(form.get("minutes"))
        grant_unmasking(platform.operators, found, reason=reason, minutes=minutes)
    except PayerBridgeError as exc:
        return _form(
            request,
            found,
            next_page=next_page,
            reason=reason,
            error=exc.text,
            status_code=rendering_for(exc).status,
        )
    return RedirectResponse(next_page, status_code=303)


def _minutes(value: object) -> int:
    try:
        return int(str(value))
    except ValueError as exc:
        raise InvalidInput(f"minutes is a whole number from 1 to {MAX_MINUTES}") from exc


def _form(
    request: Request,
    found: SignedIn,
    *,
    next_page: str | None,
    reason: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "next": safe_next(next_page),
        "reason": reason,
        "max_minutes": MAX_MINUTES,
        "error": error,
    }
    return render(request, found, "unmask.html", context, status_code=status_code)
