"""The quirky FHIR server called in-process by a synchronous httpx client: each request
runs the ASGI app on an event loop of its own, with the request's read timeout applied
as a real server's would be (the server's delay past it is a ReadTimeout)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


class SyncASGITransport(httpx.BaseTransport):
    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeout = (request.extensions.get("timeout") or {}).get("read")

        async def call() -> httpx.Response:
            response = await self._inner.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        async def bounded() -> httpx.Response:
            try:
                return await asyncio.wait_for(call(), timeout)
            except TimeoutError as exc:
                raise httpx.ReadTimeout(
                    "the server did not answer in time", request=request
                ) from exc

        return asyncio.run(bounded())


class RefusingTransport(httpx.BaseTransport):
    """A server that is not there: every connection refused."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)
