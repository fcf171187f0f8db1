"""A fault-injecting HTTP proxy in front of a sandbox partner, run as its own process.

    python -m tests.faultproxy --port P --upstream http://127.0.0.1:Q --log calls.jsonl \
        [--p503 0.3] [--ptimeout 0.1] [--pmalformed 0.05] [--delay 0.2] [--seed 7] \
        [--outcome entry.json]

Each call is answered with an injected 503 (with Retry-After), a hang longer than
the caller's timeout, a truncated body (after the partner did the work), or the
partner's own answer after ``delay`` seconds. Every call is logged as one JSON line
(when, method, path, Idempotency-Key, what was injected) so tests can count attempts. A
partner that is stopped behind it is answered 502 (``upstream-down``), still logged: the
calls a stopped partner would have received are counted.

``--outcome``: while that file exists, each ``$everything`` answer gets the Bundle entry
it holds appended (an old payer's completeness OperationOutcome, say); remove the file
and the partner answers in full again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# The partner's headers go back with its answer (Content-Location of a bulk kick-off,
# Retry-After, ETag...), except those of the hop and of the body as received, which the
# answer sent here sets itself (httpx has decoded the body).
_NOT_FORWARDED = frozenset(
    ("content-length", "content-encoding", "transfer-encoding", "connection", "date", "server")
)


def build_app(args: argparse.Namespace) -> Starlette:
    rng = random.Random(args.seed)
    # Line-buffered and open for the life of the process: every line reaches disk.
    log = Path(args.log).open("a", buffering=1)  # noqa: SIM115
    upstream = httpx.AsyncClient(base_url=args.upstream, timeout=60)

    def record(request: Request, fault: str, status: int | None) -> None:
        entry: dict[str, Any] = {
            "at": time.time(),
            "method": request.method,
            "path": request.url.path,
            "key": request.headers.get("idempotency-key"),
            "fault": fault,
            "status": status,
        }
        log.write(json.dumps(entry) + "\n")

    async def proxy(request: Request) -> Response:
        roll = rng.random()
        if roll < args.p503:
            record(request, "503", 503)
            return Response(
                '{"resourceType":"OperationOutcome"}',
                503,
                headers={"Retry-After": str(rng.choice([0, 0, 1]))},
            )
        if roll < args.p503 + args.ptimeout:
            record(request, "timeout", None)
            await asyncio.sleep(args.hang)
            return Response(status_code=504)
        await asyncio.sleep(args.delay)
        body = await request.body()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        try:
            answer = await upstream.request(
                request.method,
                request.url.path,
                params=request.query_params,
                headers=headers,
                content=body,
            )
        except httpx.TransportError:  # the partner behind is stopped
            record(request, "upstream-down", 502)
            return Response('{"resourceType":"OperationOutcome"}', 502)
        if roll < args.p503 + args.ptimeout + args.pmalformed:
            record(request, "malformed", answer.status_code)
            return Response(
                answer.content[: len(answer.content) // 2],
                answer.status_code,
                media_type="application/fhir+json",
            )
        content, fault = answer.content, "none"
        outcome = Path(args.outcome) if args.outcome else None
        if outcome and outcome.exists() and request.url.path.endswith("$everything"):
            bundle = json.loads(content)
            bundle["entry"] = [*(bundle.get("entry") or []), json.loads(outcome.read_text())]
            content, fault = json.dumps(bundle).encode(), "outcome"
        record(request, fault, answer.status_code)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _NOT_FORWARDED}
        return Response(content, answer.status_code, headers=kept)

    return Starlette(routes=[Route("/{path:path}", proxy, methods=["GET", "POST"])])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--p503", type=float, default=0.0)
    parser.add_argument("--ptimeout", type=float, default=0.0)
    parser.add_argument("--pmalformed", type=float, default=0.0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--hang", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--outcome", default=None)
    args = parser.parse_args()
    uvicorn.run(
        build_app(args), host="127.0.0.1", port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
