"""The FastAPI application: routes, error handlers, middleware, and the worker lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from payerbridge import __version__
from payerbridge.api.deps import OperatorDep
from payerbridge.api.errors import install_error_handlers
from payerbridge.api.middleware import RequestContextMiddleware
from payerbridge.api.responses import JsonResponse
from payerbridge.api.routers import (
    auth,
    clients,
    consents,
    exchanges,
    fhir,
    identity,
    partners,
    webhooks,
)
from payerbridge.bootstrap import Platform, launch_workflows, shutdown_workflows

__all__ = ["create_app"]


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
    )
    app.state.platform = platform
    install_error_handlers(app)
    app.include_router(auth.router)  # before fhir: /fhir/.well-known/... is not a resource read
    app.include_router(fhir.router)
    app.include_router(exchanges.router)
    app.include_router(partners.router)
    app.include_router(consents.router)
    app.include_router(clients.router)
    app.include_router(identity.router)
    app.include_router(webhooks.router)

    @app.get("/openapi.json", tags=["operators"], include_in_schema=False)
    def openapi(_operator: OperatorDep) -> dict[str, Any]:
        return app.openapi()

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        with platform.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    app.add_middleware(
        RequestContextMiddleware, max_request_bytes=platform.settings.max_request_bytes
    )
    return app
