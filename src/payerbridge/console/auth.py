"""Who is asking, and may they: the session cookie, the dependencies every console route
takes, and the CSRF check of every form (ADR 0035).

- ``SignedInDep``: the request's operator (``SignedIn``); none sends the browser to the
  sign-in page, which brings it back afterwards.
- ``require_permission(Permission.X)``: the same, refused with the 403 page when the
  operator's role lacks the permission; ``ReaderDep``, ``ReviewerDep``,
  ``IntervenerDep``, ``PartnersDep`` and ``AuditorDep`` are the five.
- ``checked_form``: a POST's form, once its ``csrf_token`` field matches the session's
  (``csrf_field()`` in a template writes it) and the request comes from our own origin;
  ``FormDep`` is it as a parameter.
- ``Visit``: a page's request, the platform and the operator (permission checked) as
  one value; ``ReaderVisit`` and the others are it as a parameter.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.responses import Response

from payerbridge.bootstrap import Platform
from payerbridge.console.pages import render
from payerbridge.errors import Forbidden, Issue, Unauthenticated
from payerbridge.security.model import Permission
from payerbridge.security.operator_accounts import SignedIn, session_of
from payerbridge.security.unit import OperatorUnit

__all__ = [
    "AuditorDep",
    "AuditorVisit",
    "FormDep",
    "IntervenerDep",
    "IntervenerVisit",
    "OperatorUnitDep",
    "PartnersDep",
    "PartnersVisit",
    "PlatformDep",
    "ReaderDep",
    "ReaderVisit",
    "ReviewerDep",
    "ReviewerVisit",
    "SESSION_COOKIE",
    "SignedInDep",
    "Visit",
    "checked_form",
    "clear_session_cookie",
    "current_platform",
    "require_permission",
    "safe_next",
    "set_session_cookie",
    "signed_in",
]

SESSION_COOKIE = "pb_console"
_COOKIE_PATH = "/console"
# Form fields a console form may send, at most: a larger form is refused unread.
_MAX_FIELDS = 50


def current_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(current_platform)]


async def operator_unit(platform: PlatformDep) -> OperatorUnit:
    """The request's unit of work on the console's accounts (async: it waits on nothing)."""
    return platform.units.operators()


OperatorUnitDep = Annotated[OperatorUnit, Depends(operator_unit)]


def _is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    """The session token, for the console's paths only, out of scripts' reach, never
    sent with a request another site starts, over TLS only when we serve TLS."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path=_COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_is_tls(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=_COOKIE_PATH, httponly=True, samesite="strict", secure=_is_tls(request)
    )


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path of ours, never another site."""
    if not target or not target.startswith("/console") or target.startswith("//"):
        return "/console/"
    if any(c in target for c in "\\\r\n") or target.startswith("/console/login"):
        return "/console/"
    return target


def _to_sign_in(request: Request, why: str) -> HTTPException:
    """A redirect to the sign-in page that comes back here (for a page; after a form,
    to the page it was posted from)."""
    back = request.url.path
    if request.method == "GET" and request.url.query:
        back = f"{back}?{request.url.query}"
    elif request.method != "GET":
        back = request.headers.get("referer", "").partition(request.url.netloc)[2] or "/console/"
    location = f"/console/login?why={quote(why)}&next={quote(safe_next(back), safe='')}"
    return HTTPException(303, headers={"Location": location})


def signed_in(request: Request, uow: OperatorUnitDep) -> SignedIn:
    """The request's live session (a sync dependency: FastAPI runs it on a thread)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        raise _to_sign_in(request, "signin")
    try:
        found = session_of(token, uow)
    except Unauthenticated as exc:
        why = exc.issues[0].expression if exc.issues else None
        raise _to_sign_in(request, (why or "session.signin").removeprefix("session.")) from exc
    request.state.signed_in = found
    return found


SignedInDep = Annotated[SignedIn, Depends(signed_in)]


def _permitted(found: SignedIn, permission: Permission) -> SignedIn:
    """``found``, if their role has ``permission`` (Forbidden otherwise)."""
    if not found.operator.may(permission):
        text = (
            f"your role ({found.operator.role}) does not open this page: it needs the "
            f"'{permission}' permission"
        )
        raise Forbidden(text, issues=[Issue(text, "role", "forbidden")])
    return found


def require_permission(permission: Permission) -> object:
    """A dependency: the signed-in operator, if their role has ``permission``."""

    def permitted(found: SignedInDep) -> SignedIn:
        return _permitted(found, permission)

    return Depends(permitted)


ReaderDep = Annotated[SignedIn, require_permission(Permission.READ)]
ReviewerDep = Annotated[SignedIn, require_permission(Permission.REVIEW)]
IntervenerDep = Annotated[SignedIn, require_permission(Permission.INTERVENE)]
PartnersDep = Annotated[SignedIn, require_permission(Permission.PARTNERS)]
AuditorDep = Annotated[SignedIn, require_permission(Permission.AUDIT)]


@dataclass(frozen=True)
class Visit:
    """A signed-in operator's request for a console page: the request, the platform that
    answers it, and the operator (their role's permission for the page checked)."""

    request: Request
    platform: Platform
    signed_in: SignedIn

    def render(
        self, template: str, context: Mapping[str, Any], *, status_code: int = 200
    ) -> Response:
        """``template`` for this operator (``pages.render``)."""
        return render(self.request, self.signed_in, template, context, status_code=status_code)


def visiting(permission: Permission) -> object:
    """A dependency: the request as a ``Visit``, if the operator's role has
    ``permission``."""

    # The parameters' annotations name module-level types only: FastAPI reads them as
    # strings (postponed annotations), which a closure's variable cannot be.
    def visit(request: Request, platform: PlatformDep, found: SignedInDep) -> Visit:
        return Visit(request, platform, _permitted(found, permission))

    return Depends(visit)


ReaderVisit = Annotated[Visit, visiting(Permission.READ)]
ReviewerVisit = Annotated[Visit, visiting(Permission.REVIEW)]
IntervenerVisit = Annotated[Visit, visiting(Permission.INTERVENE)]
PartnersVisit = Annotated[Visit, visiting(Permission.PARTNERS)]
AuditorVisit = Annotated[Visit, visiting(Permission.AUDIT)]


def _same_origin(request: Request) -> bool:
    """Whether the browser says the form came from a page of ours: ``Sec-Fetch-Site``
    where it sends one (whatever name the operator reached us by), else ``Origin``
    against our configured base. A client that sends neither is an old browser or not a
    browser: the token still decides."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return origin == f"{request.url.scheme}://{request.url.netloc}"


async def checked_form(request: Request, found: SignedInDep) -> FormData:
    """The POST's form once its CSRF token is the session's (Forbidden otherwise)."""
    form = await request.form(max_files=0, max_fields=_MAX_FIELDS)
    sent = form.get("csrf_token")
    if (
        not isinstance(sent, str)
        or not hmac.compare_digest(sent.encode(), found.csrf_token.encode())
        or not _same_origin(request)
    ):
        text = (
            "this form's security token is missing or out of date (the page was open "
            "before you signed in again, or the form came from elsewhere): reload the page "
            "and send it again"
        )
        raise Forbidden(text, issues=[Issue(text, "csrf_token", "forbidden")])
    return form


FormDep = Annotated[FormData, Depends(checked_form)]
