"""The API's answer to a database that does not answer (a restart, a failover): 503 with
Retry-After and an OperationOutcome ``transient``, so a caller waits and asks again; not
the 500 of an unhandled error."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from payerbridge.api.errors import install_error_handlers
from payerbridge.errors import StoreUnavailable


def test_a_database_that_does_not_answer_is_a_503_transient_with_retry_after() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/exchanges/{exchange_id}")
    def read(exchange_id: str) -> None:
        raise StoreUnavailable("the database is not answering just now; try again shortly")

    async def ask() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/exchanges/x")

    answer = asyncio.run(ask())
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == str(StoreUnavailable.retry_after_seconds)
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "transient"
    assert "try again" in outcome["issue"][0]["details"]["text"]
