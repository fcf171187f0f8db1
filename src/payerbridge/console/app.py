"""The console as an application of its own, mounted at ``/console`` by ``create_app()``:
its pages' routers, its static files, its security headers, and errors answered as
pages (the API's handlers answer OperationOutcomes; a person gets a page)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payerbridge.audit.model import AuditEvent
from payerbridge.bootstrap import Platform
from payerbridge.console import (
    audit,
    consents,
    exchanges,
    health,
    holds,
    interventions,
    jobs,
    login,
    opt_outs,
    overview,
    partners,
    pulls,
    reviews,
    unmask,
)
from payerbridge.console.pages import HERE, SECURITY_HEADERS, plain_page, render
from payerbridge.errors import Forbidden, PayerBridgeError
from payerbridge.fhir.outcome import rendering_for
from payerbridge.logging import current_request_id

__all__ = ["CONSOLE_PATH", "PUBLIC_PAGES", "build_console", "install_console"]

logger = logging.getLogger(__name__)

CONSOLE_PATH = "/console"
# The console's pages that need no session, by design (the route walker checks the rest).
PUBLIC_PAGES = frozenset({("GET", "/login"), ("POST", "/login")})


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every console answer (static files included)."""

    def __init__(self, app: ASGIApp, *, tls: bool) -> None:
        self.app = app
        extra = {**SECURITY_HEADERS}
        if tls:
            extra["Strict-Transport-Security"] = "max-age=31536000"
        self._headers = [(k.lower().encode(), v.encode()) for k, v in extra.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self._headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_console(platform: Platform) -> FastAPI:
    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console.state.platform = platform
    console.include_router(login.router)
    console.include_router(overview.router)
    console.include_router(exchanges.router)
    console.include_router(interventions.router)
    console.include_router(partners.router)
    console.include_router(health.router)
    console.include_router(jobs.router)
    console.include_router(pulls.router)
    console.include_router(consents.router)
    console.include_router(holds.router)
    console.include_router(opt_outs.router)
    console.include_router(audit.router)
    console.include_router(reviews.router)
    console.include_router(unmask.router)
    console.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _install_error_pages(console)
    console.add_middleware(SecurityHeaders, tls=platform.settings.base_url.startswith("https"))
    return console


def install_console(app: FastAPI, platform: Platform) -> None:
    app.mount(CONSOLE_PATH, build_console(platform))


def _install_error_pages(console: FastAPI) -> None:
    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if 300 <= exc.status_code < 400:
            return RedirectResponse(
                (exc.headers or {}).get("Location", "/console/"), status_code=exc.status_code
            )
        text = "no such page" if exc.status_code == 404 else str(exc.detail)
        return plain_page(request, exc.status_code, f"{exc.status_code}", text)

    async def on_forbidden(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Forbidden)
        found = getattr(request.state, "signed_in", None)
        if found is not None:
            await run_in_threadpool(_audit_refusal, console, found.actor, request, exc)
        return render(
            request,
            found,
            "error.html",
            {"title": "Not allowed", "text": exc.text, "status": 403},
            status_code=403,
        )

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PayerBridgeError)
        status = rendering_for(exc).status
        found = getattr(request.state, "signed_in", None)
        context = {"title": f"{status}", "text": exc.text, "issues": exc.issues, "status": status}
        return render(request, found, "error.html", context, status_code=status)

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p not in ('query', 'body'))}: "
            f"{e.get('msg')}"
            for e in exc.errors()
        ]
        found = getattr(request.state, "signed_in", None)
        context = {"title": "Bad request", "text": "; ".join(problems), "status": 400}
        return render(request, found, "error.html", context, status_code=400)

    async def on_crash(request: Request, exc: Exception) -> Response:
        logger.error("console page failed", extra={"error_type": type(exc).__name__})
        text = f"something went wrong on our side; quote request id {current_request_id()}"
        return plain_page(request, 500, "Server error", text)

    console.add_exception_handler(HTTPException, on_http)
    console.add_exception_handler(Forbidden, on_forbidden)
    console.add_exception_handler(PayerBridgeError, on_error)
    console.add_exception_handler(RequestValidationError, on_invalid)
    console.add_exception_handler(Exception, on_crash)


def _audit_refusal(console: FastAPI, actor: str, request: Request, exc: Forbidden) -> None:
    """A page or form refused to a signed-in operator is audited (a role probed, a
    forged form)."""
    platform: Platform = console.state.platform
    uow = platform.units.operators()
    try:
        uow.audit.record(
            AuditEvent(
                at=uow.clock(),
                actor=actor,
                action="console.refused",
                entity_type="ConsolePage",
                entity_id=f"{request.method} {request.url.path}"[:200],
                outcome="failure",
                request_id=current_request_id(),
                detail={"reason": exc.issues[0].expression if exc.issues else None},
            )
        )
    except PayerBridgeError:
        logger.warning("a console refusal could not be audited")
