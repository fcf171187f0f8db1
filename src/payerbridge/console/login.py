"""Signing in and out of the console. The sign-in form has its own CSRF token (there is
no session yet): a random value in a cookie of its own and in the form, which must
match, so that another site cannot sign a browser into an account of its choosing."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import RedirectResponse, Response

from payerbridge.console.auth import (
    FormDep,
    OperatorUnitDep,
    SignedInDep,
    clear_session_cookie,
    safe_next,
    set_session_cookie,
)
from payerbridge.console.pages import NO_FLASH, Flash, render
from payerbridge.errors import Forbidden, Issue, TooManyAttempts, Unauthenticated
from payerbridge.security.operator_accounts import SESSION_ENDINGS, SignIn, log_in, log_out

__all__ = ["router"]

router = APIRouter()

_LOGIN_COOKIE = "pb_console_login"
_NOTICES = {**SESSION_ENDINGS, "signedout": "you have signed out"}


def _login_page(
    request: Request, next_page: str, name: str = "", flash: Flash = NO_FLASH
) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        None,
        "login.html",
        {
            "login_token": token,
            "next": safe_next(next_page),
            "name": name,
            "notice": flash.notice,
            "error": flash.error,
        },
        status_code=flash.status_code,
    )
    response.set_cookie(
        _LOGIN_COOKIE,
        token,
        path="/console/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/login")
def login_form(
    request: Request,
    next_page: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
    why: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    notice = _NOTICES.get(why or "")
    return _login_page(request, next_page or "/console/", flash=Flash(notice=notice))


async def _login_form(request: Request) -> dict[str, str]:
    form = await request.form(max_files=0, max_fields=10)
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    sent, kept = fields.get("login_token", ""), request.cookies.get(_LOGIN_COOKIE, "")
    if not sent or not kept or not hmac.compare_digest(sent.encode(), kept.encode()):
        text = "the sign-in form is out of date or came from elsewhere: reload it and try again"
        raise Forbidden(text, issues=[Issue(text, "login_token", "forbidden")])
    return fields


@router.post("/login")
def sign_in(
    request: Request,
    uow: OperatorUnitDep,
    fields: Annotated[dict[str, str], Depends(_login_form)],
) -> Response:
    name, password = fields.get("name", "").strip(), fields.get("password", "")
    next_page = safe_next(fields.get("next"))
    if not name or not password:
        missing = Flash(error="enter your name and your password", status_code=400)
        return _login_page(request, next_page, name[:64], missing)
    token = secrets.token_urlsafe(32)
    address = request.client.host if request.client else "unknown"
    try:
        log_in(SignIn(name[:64], password, token, address), uow)
    except (Unauthenticated, TooManyAttempts) as exc:
        status = 429 if isinstance(exc, TooManyAttempts) else 401
        return _login_page(request, next_page, name[:64], Flash(error=exc.text, status_code=status))
    response = RedirectResponse(next_page, status_code=303)
    set_session_cookie(response, request, token)
    response.delete_cookie(_LOGIN_COOKIE, path="/console/login")
    return response


@router.post("/logout")
def sign_out(
    request: Request, uow: OperatorUnitDep, found: SignedInDep, _form: FormDep
) -> Response:
    log_out(found, uow)
    response = RedirectResponse("/console/login?why=signedout", status_code=303)
    clear_session_cookie(response, request)
    return response
