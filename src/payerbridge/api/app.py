"""The FastAPI application: routes, error handlers, middleware, and the worker lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from payerbridge import __version__
from payerbridge.api.deps import OperatorDep
from payerbridge.api.errors import install_error_handlers
from payerbridge.api.middleware import RequestContextMiddleware
from payerbridge.api.responses import JsonResponse
from payerbridge.api.routers import (
    audit,
    auth,
    bulk,
    clients,
    compliance,
    consents,
    davinci_configuration,
    exchanges,
    fhir,
    identity,
    lifecycle,
    metrics,
    onboardings,
    partner_directory,
    partner_discovery,
    partners,
    provider_access,
    pulls,
    quarantine,
    received,
    runbooks,
    sources,
    webhooks,
)
from payerbridge.bootstrap import Platform, launch_workflows, shutdown_workflows
from payerbridge.console import install_console
from payerbridge.fhir.reasons import link_runbooks_to

__all__ = ["COMMON_RESPONSES", "create_app"]

# What any route may answer besides its success, each as an OperationOutcome: declared
# once for every route, so that the description tells a client every status it can get.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed request: the issues name each bad field"},
    401: {"description": "No valid access token (see /.well-known/smart-configuration)"},
    403: {"description": "The token lacks the scope this operation needs"},
    404: {"description": "No such thing, or not the caller's"},
    409: {"description": "Conflicts with what is stored (an id taken, a key reused)"},
    413: {"description": "The body is larger than the configured limit"},
    415: {"description": "The body is not JSON"},
    422: {"description": "Well-formed, but names something that cannot be acted on"},
    429: {"description": "Too many attempts; Retry-After says when to try again"},
    503: {"description": "A dependency did not answer; retry (Retry-After when known)"},
}


def create_app(platform: Platform, *, run_workers: bool = True) -> FastAPI:
    """One instance: the API and, with ``run_workers``, a workflow worker. Without it the
    process only enqueues exchanges and separate ``payerbridge worker`` processes run them."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # DBOS's setup calls are synchronous and refuse to run on the event loop's thread.
        await run_in_threadpool(launch_workflows, platform, work=run_workers)
        try:
            yield
        finally:
            await run_in_threadpool(shutdown_workflows, platform)
            platform.close()

    app = FastAPI(
        title="payerbridge",
        version=__version__,
        lifespan=lifespan,
        default_response_class=JsonResponse,
        # The API's description is for operators: served below behind their token, and
        # no interactive page (it would fetch the description without one).
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        responses=COMMON_RESPONSES,
    )
    app.state.platform = platform
    link_runbooks_to(platform.settings.runbook_template)  # each OperationOutcome's link
    install_error_handlers(app)
    # The old payer's hottest call first: FastAPI searches each included router's routes
    # (twice for the router it picks) before the one it wants, a twentieth of the call.
    app.router.routes.append(fhir.member_match_route)
    app.include_router(davinci_configuration.router)
    app.include_router(auth.router)  # before fhir: /fhir/.well-known/... is not a resource read
    app.include_router(bulk.router)  # before fhir: /fhir/Group... is not a member's resource
    app.include_router(audit.router)  # before fhir: /fhir/AuditEvent is the audit chain's
    app.include_router(fhir.router)
    app.include_router(exchanges.router)
    app.include_router(received.router)
    app.include_router(onboardings.router)
    app.include_router(pulls.router)
    app.include_router(partner_discovery.router)  # before partners: $discover is no id
    app.include_router(partner_directory.router)  # before partners: /partners/proposals
    app.include_router(partners.router)
    app.include_router(consents.router)
    app.include_router(clients.router)
    app.include_router(identity.router)
    app.include_router(webhooks.router)
    app.include_router(quarantine.router)
    app.include_router(sources.router)
    app.include_router(runbooks.router)
    app.include_router(compliance.router)
    app.include_router(lifecycle.router)
    app.include_router(provider_access.router)
    install_console(app, platform)  # the operator console's pages at /console (ADR 0035)
    app.include_router(metrics.router)

    @app.get("/openapi.json", tags=["operators"], include_in_schema=False)
    def openapi(_operator: OperatorDep) -> dict[str, Any]:
        return app.openapi()

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Ready: the database answers (a readiness probe; 503 while it is away)."""
        platform.units.oversight().readiness.ping()
        return {"status": "ok", "version": __version__}

    @app.get("/livez", tags=["health"])
    def livez() -> dict[str, str]:
        """Alive: the process answers, whatever the database does (a liveness probe, which
        must not restart a process that only waits out a database restart; ADR 0048)."""
        return {"status": "alive", "version": __version__}

    app.add_middleware(
        RequestContextMiddleware,
        max_request_bytes=platform.settings.max_request_bytes,
        # Redirects and Location headers name our configured base, never the Host header.
        public_base_url=platform.settings.base_url,
    )
    return app
