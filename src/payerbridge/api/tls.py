"""TLS client certificates for the application (mutual TLS, RFC 8705).

uvicorn terminates TLS but does not hand the client's certificate to the application;
this protocol does, in the ASGI TLS extension (``scope["extensions"]["tls"]``,
``client_cert_chain`` as PEM), read once per connection from the TLS session.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["ClientCertificateProtocol", "client_certificate"]


class ClientCertificateProtocol(HttpToolsProtocol):
    _client_chain: list[str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self._client_chain = [ssl.DER_cert_to_PEM_cert(der)] if der else None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._client_chain is not None:
            scope: Any = self.scope
            scope["extensions"] = {"tls": {"client_cert_chain": self._client_chain}}


def client_certificate(scope: Any) -> bytes | None:
    """The DER of the connection's client certificate, when it presented one."""
    chain = (scope.get("extensions") or {}).get("tls", {}).get("client_cert_chain")
    if not chain:
        return None
    return ssl.PEM_cert_to_DER_cert(chain[0])
