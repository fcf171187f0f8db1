"""ASGI middleware: correlation id, request size limit, one log line per request (with what
its handlers noted on it: ``logging.log_on_request``) and its metrics (by route template),
the last-resort 500 (an OperationOutcome with the request id, never a stack trace), and
our own origin.

Every URL the application builds from a request (redirects such as ``/exchanges/`` to
``/exchanges``, ``Location`` headers, Bundle links) names the configured public base
(``PAYERBRIDGE_PUBLIC_BASE_URL``), never the request's ``Host`` header or scheme: the
middleware replaces both in the request it passes on, so a forged ``Host`` is not
reflected anywhere."""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payerbridge.errors import Issue, PayerBridgeError, PayloadTooLarge
from payerbridge.fhir.outcome import operation_outcome
from payerbridge.logging import new_request_id, request_id_var, request_line
from payerbridge.metrics import record_http
from payerbridge.tracing import begin_request

__all__ = ["UNMATCHED", "RequestContextMiddleware", "route_template"]

logger = logging.getLogger("payerbridge.api.request")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
UNMATCHED = "unmatched"  # the route label of a request no route matched


def route_template(scope: Scope, root_path: str = "") -> str:
    """The template of the route that answered, never the path itself (a path carries
    ids): ``/exchanges/{exchange_id}``. A mounted application's routes carry its mount
    (``/console/exchanges``, apart from the API's ``/exchanges``), and a path under a
    mount that no route of it matched is ``<mount>/{path}``; any other, ``unmatched``.
    ``root_path``: the request's before the application routed it."""
    mount = scope.get("root_path", "")
    mount = mount[len(root_path) :] if mount.startswith(root_path) else ""
    route_path = getattr(scope.get("route"), "path", None)
    if route_path is not None:
        return f"{mount}{route_path}"
    return f"{mount}/{{path}}" if mount else UNMATCHED


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_request_bytes: int, public_base_url: str | None = None
    ) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self._origin: tuple[str, bytes] | None = None
        if public_base_url is not None:
            parts = urlsplit(public_base_url)
            self._origin = (parts.scheme, parts.netloc.encode("latin-1"))

    def _our_origin(self, scope: Scope) -> tuple[Scope, str, str]:
        """The request as if it had been sent to our configured base, and the two headers
        read here (``X-Request-Id``, ``Content-Length``; empty when absent). One pass over
        the headers, copied only to replace ``Host``: this runs before every request."""
        incoming = declared = ""
        headers = scope["headers"]
        host_at, hosts = -1, 0
        for i, (name, value) in enumerate(headers):
            name = name.lower()
            if name == b"host":
                host_at, hosts = i, hosts + 1
            elif name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"content-length":
                declared = value.decode("latin-1")
        if self._origin is None:
            return scope, incoming, declared
        scheme, host = self._origin
        if hosts == 1 and headers[host_at][1] == host and scope.get("scheme") == scheme:
            return scope, incoming, declared
        others = [(k, v) for k, v in headers if k.lower() != b"host"]
        return (
            {**scope, "scheme": scheme, "headers": [(b"host", host), *others]},
            incoming,
            declared,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope, incoming, declared_length = self._our_origin(scope)
        root_path = scope.get("root_path", "")  # a mounted app (the console) extends it
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else new_request_id()
        request_id_var.set(request_id)
        # The caller's trace continued (and our span, when recording) until the line below.
        traced = begin_request(scope["method"], scope["headers"], request_id)
        started = time.perf_counter()
        state: dict[str, Any] = {"status": None}
        noted: dict[str, Any] = {}  # what its handlers log on the request's line

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            declared = int(declared_length or 0)
        except ValueError:
            declared = 0
        try:
            with request_line(noted):
                if declared > self.max_request_bytes:
                    await self._reject_too_large(send_with_id, request_id)
                else:
                    await self.app(scope, self._limited(receive), send_with_id)
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            logger.error(
                "unhandled error", extra={"error_type": type(exc).__name__}, exc_info=False
            )
            if state["status"] is None:
                await self._send_outcome(
                    send_with_id,
                    500,
                    operation_outcome(
                        [Issue("internal server error; quote the request id to support")],
                        severity="fatal",
                        code="exception",
                        request_id=request_id,
                        reason=PayerBridgeError.reason_code,
                    ),
                )
        finally:
            template = route_template(scope, root_path)
            took = time.perf_counter() - started
            record_http(scope["method"], template, state["status"], took)
            logger.info(
                "request",
                extra={
                    **noted,
                    "method": scope["method"],
                    "path": template,
                    "status": state["status"],
                    "duration_ms": round(took * 1000, 2),
                },
            )
            traced.end(None if template == UNMATCHED else template, state["status"])

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_request_bytes

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(self._too_large_text())
            return message

        return limited

    def _too_large_text(self) -> str:
        return (
            f"request body exceeds the limit of {self.max_request_bytes} bytes "
            "(PAYERBRIDGE_MAX_REQUEST_BYTES)"
        )

    async def _reject_too_large(self, send: Send, request_id: str) -> None:
        await self._send_outcome(
            send,
            413,
            operation_outcome(
                [Issue(self._too_large_text())],
                severity="error",
                code="too-long",
                request_id=request_id,
                reason=PayloadTooLarge.reason_code,
            ),
        )

    @staticmethod
    async def _send_outcome(send: Send, status: int, body: dict[str, Any]) -> None:
        content = orjson.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/fhir+json"),
                    (b"content-length", str(len(content)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})
