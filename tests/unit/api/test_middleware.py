"""The request middleware in process: whatever ``Host`` headers a request carries, the
application sees one, our configured base's, and our scheme; the request id and the
declared length are read as before; requests are counted by route template, a mounted
application's (the console's) under its mount."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.api.middleware import RequestContextMiddleware
from payerbridge.metrics.process import process_metrics

_BASE = "https://payer.example.org"
_A_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")

_names = st.sampled_from(
    [b"host", b"Host", b"HOST", b"accept", b"x-request-id", b"X-Request-Id", b"x-other"]
)
_values = st.one_of(
    st.sampled_from([b"payer.example.org", b"evil.example", b"abc-123", b"", b"127.0.0.1:8000"]),
    st.binary(max_size=20).map(lambda raw: bytes(b for b in raw if 32 < b < 127)),
)


def _seen(
    headers: list[tuple[bytes, bytes]], scheme: str, base: str | None, method: str = "GET"
) -> dict[str, Any]:
    """What the application saw (``scope``, absent if it was not called) and the answer's
    ``status`` and ``response`` headers."""
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["scope"] = scope
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
            seen["response"] = dict(message["headers"])

    middleware = RequestContextMiddleware(app, max_request_bytes=1000, public_base_url=base)
    scope = {"type": "http", "method": method, "path": "/", "scheme": scheme, "headers": headers}
    asyncio.run(middleware(scope, receive, send))
    return seen


@settings(max_examples=200, deadline=None)
@given(
    headers=st.lists(st.tuples(_names, _values), max_size=6),
    scheme=st.sampled_from(["http", "https"]),
)
def test_the_application_sees_only_our_host_and_scheme(
    headers: list[tuple[bytes, bytes]], scheme: str
) -> None:
    seen = _seen(list(headers), scheme, _BASE)
    passed = seen["scope"]["headers"]
    assert [value for name, value in passed if name.lower() == b"host"] == [b"payer.example.org"]
    assert seen["scope"]["scheme"] == "https"
    others = [(name, value) for name, value in headers if name.lower() != b"host"]
    assert [(n, v) for n, v in passed if n.lower() != b"host"] == others
    ids = [value for name, value in headers if name.lower() == b"x-request-id"]
    answered = seen["response"][b"x-request-id"]
    if ids and _A_REQUEST_ID.fullmatch(ids[-1]):
        assert answered == ids[-1]
    else:
        assert len(answered) == 36  # a new uuid


def test_without_a_configured_base_the_request_is_passed_as_it_came() -> None:
    headers = [(b"host", b"anything.example"), (b"x-request-id", b"r-1")]
    seen = _seen(list(headers), "http", None)
    assert seen["scope"]["headers"] == headers
    assert seen["response"][b"x-request-id"] == b"r-1"


def test_a_declared_length_over_the_limit_is_refused_before_the_application() -> None:
    headers = [(b"Content-Length", b"1001"), (b"host", b"payer.example.org")]
    seen = _seen(headers, "https", _BASE, method="POST")
    assert seen["status"] == 413 and "scope" not in seen


def _routes_counted(paths: list[str]) -> dict[str, float]:
    """Each path requested through the middleware, in front of an API route and a
    mounted application (as the console is): the requests counted, by route label."""
    api, console = FastAPI(), FastAPI()

    @api.get("/exchanges")
    def listed() -> dict[str, str]:
        return {}

    @console.get("/exchanges/{exchange_id}")
    def page(exchange_id: str) -> dict[str, str]:
        return {}

    api.mount("/console", console)
    app = RequestContextMiddleware(api, max_request_bytes=1000)
    counted = "payerbridge_http_requests_total"

    def count(route: str) -> float:
        sample = process_metrics().registry.get_sample_value
        labels = {"method": "GET", "route": route}
        return sum(sample(counted, {**labels, "status": s}) or 0.0 for s in ("200", "404"))

    routes = ("/exchanges", "/console/exchanges/{exchange_id}", "/console/{path}", "unmatched")
    before = {route: count(route) for route in routes}

    async def send_all() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for path in paths:
                await client.get(path)

    asyncio.run(send_all())
    return {route: count(route) - before[route] for route in routes}


def test_the_consoles_pages_are_labelled_apart_from_the_apis_routes() -> None:
    moved = _routes_counted(
        ["/exchanges", "/console/exchanges/ex-1", "/console/exchanges/ex-2", "/console/nope", "/x"]
    )
    assert moved == {
        "/exchanges": 1,
        "/console/exchanges/{exchange_id}": 2,  # the template, never the id
        "/console/{path}": 1,  # under the console's mount, no page of it
        "unmatched": 1,
    }
