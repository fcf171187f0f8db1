"""The httpx transport of every outbound call that goes where someone else told us to go
(partners, ``jwks_url``, webhooks), and answers read up to a cap.

``GuardedTransport`` resolves the host itself when it opens a connection, checks every
address with the ``AddressPolicy`` and connects to a checked address: the address
judged is the address used, so a name that resolves to a public address when checked
and to a private one a moment later (DNS rebinding) cannot slip between the two. The
URL is unchanged, so the ``Host`` header and TLS SNI and certificate checks still name
the host. Plain ``http://`` is refused unless every address is in a network the
operator listed. Proxies from the environment are not used (a proxy would connect for
us, unchecked).

``send_bounded`` sends the current trace context with the call (ADR 0033), streams an
answer and stops reading at a cap: a partner cannot make us
hold more than the cap in memory (decompressed bytes are counted). ``oauth_error`` says
why a token endpoint refused us, in its own words as far as OAuth defines them.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from functools import cache
from typing import Any

import httpcore
import httpx

from payerbridge.net.addresses import AddressPolicy
from payerbridge.tracing import answered, outbound_span, send_trace_context

__all__ = [
    "AddressRefused",
    "AnswerTooLarge",
    "GuardedTransport",
    "carry_trace_context",
    "oauth_error",
    "resolve",
    "send_bounded",
    "verified_tls",
]

Resolver = Callable[[str, int], list[str]]

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_plain_http: ContextVar[bool] = ContextVar("payerbridge_plain_http", default=False)


class AddressRefused(httpx.ConnectError):
    """The host resolves to an address we do not connect to, or the URL carries
    credentials (``user:password@``); nothing was sent."""


class AnswerTooLarge(Exception):
    """The answer is larger than the cap; reading stopped there."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit


def resolve(host: str, port: int) -> list[str]:
    """The host's addresses, in the resolver's order, each once."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _GuardedBackend(httpcore.NetworkBackend):
    def __init__(self, policy: AddressPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolve = resolver
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self._resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve") from exc
        refusals = self._policy.refusals(addresses)
        if refusals:
            raise AddressRefused(f"{host} resolves to {refusals[0]}; nothing was sent")
        if _plain_http.get() and not self._policy.allows_plain_http(addresses):
            raise AddressRefused(
                f"plain http:// to {host} is refused: https is required outside the "
                "networks an operator listed (PAYERBRIDGE_EGRESS_ALLOWED_NETWORKS)"
            )
        if not addresses:
            raise httpcore.ConnectError(f"{host} does not resolve")
        failure: Exception | None = None
        for address in addresses:  # the checked addresses, and only those
            try:
                return self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise AddressRefused("outbound calls do not use Unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@cache
def verified_tls() -> ssl.SSLContext:
    """The TLS context every outbound call verifies its server with (certifi's roots, or
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` as httpx reads them), one per process: building
    one reads the whole CA bundle (about 60 ms of CPU), and each outbound client built
    two, six per start of a server, worker or command. An ``SSLContext`` is made to be
    shared by connections and threads."""
    return httpx.create_ssl_context()


class GuardedTransport(httpx.HTTPTransport):
    """An ``httpx.HTTPTransport`` that connects only where ``policy`` allows."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        resolver: Resolver = resolve,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(verify=verified_tls(), limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=verified_tls(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(policy, resolver),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.userinfo:
            # httpx turns a URL's user:password@ into Basic auth: a partner row stored
            # before registration refused them must not send them either (ADR 0046).
            raise AddressRefused(
                f"{request.url.host}: a URL with a user name or password in it is not "
                "called; nothing was sent (register the partner's URL without them)",
                request=request,
            )
        token = _plain_http.set(request.url.scheme != "https")
        try:
            return super().handle_request(request)
        finally:
            _plain_http.reset(token)


def carry_trace_context(request: httpx.Request) -> None:
    """An httpx ``request`` event hook: the call carries the current trace context (a
    client whose calls do not go through ``send_bounded``, as webhook posts)."""
    send_trace_context(request.headers)


def send_bounded(client: httpx.Client, request: httpx.Request, *, limit: int) -> httpx.Response:
    """Send ``request`` and read at most ``limit`` bytes of the answer (AnswerTooLarge
    beyond, the connection closed); the answer, read. The call carries the current trace
    context (W3C ``traceparent``), and is a client span of its own when recording."""
    url = request.url
    with outbound_span(request.method, url.host, url.port, url.path) as current:
        send_trace_context(request.headers)
        response = _read_bounded(client, request, limit)
        answered(current, response.status_code)
        return response


def _read_bounded(client: httpx.Client, request: httpx.Request, limit: int) -> httpx.Response:
    response = client.send(request, stream=True)
    try:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise AnswerTooLarge(limit)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise AnswerTooLarge(limit)
            chunks.append(chunk)
    finally:
        response.close()
    skipped = (b"content-encoding", b"content-length", b"transfer-encoding")
    return httpx.Response(
        response.status_code,
        headers=[(k, v) for k, v in response.headers.raw if k.lower() not in skipped],
        content=b"".join(chunks),
        request=request,
    )


def oauth_error(response: httpx.Response) -> str:
    """A token endpoint's refusal: its OAuth ``error`` code (RFC 6749 5.2), else the
    HTTP status; never its free text, which may echo what we sent."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])[:100]
    return f"HTTP {response.status_code}"
