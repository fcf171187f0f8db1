"""JWK Sets read from the URL a client registered (SMART ``jwks_uri``), cached briefly so
that a client's token requests do not each fetch its keys, and re-read when the cache
ages out (a client rotating its keys is seen within minutes).

The URL is where a client told us to go, so it is called like a partner: through the
egress policy's transport (an address that is not public, or plain http outside the
networks an operator listed, is never connected to) and read up to a cap
(``PARTNER_MAX_DOCUMENT_BYTES``). ``check`` judges a URL before it is registered.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from payerbridge.errors import Issue, PartnerError, PartnerUnavailable, UnprocessableRequest
from payerbridge.partners.answers import MIB, Outbound, send_capped

__all__ = ["HttpxKeySetSource"]


class HttpxKeySetSource:
    def __init__(
        self, *, outbound: Outbound, max_age_seconds: float = 300.0, limit: int = 2 * MIB
    ) -> None:
        self._policy = outbound.policy
        self._resolve = outbound.resolver
        self._client = outbound.client()
        self._max_age = max_age_seconds
        self._limit = limit
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def check(self, url: str) -> str:
        """``url`` when a client's JWK Set may be read there; UnprocessableRequest naming
        ``jwks_url`` when it resolves to an address that is not called or is plain http
        outside the listed networks (a name that does not resolve yet passes: every
        fetch checks again)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            addresses = self._resolve(host, port) if host else []
        except (OSError, UnicodeError, ValueError):
            return url
        why = None
        if refusals := self._policy.refusals(addresses):
            why = f"jwks_url resolves to an address that is not called ({refusals[0]})"
        elif parts.scheme != "https" and not self._policy.allows_plain_http(addresses):
            why = "jwks_url must be an https:// URL"
        if why is not None:
            raise UnprocessableRequest(
                "the client's jwks_url is not acceptable",
                issues=[Issue(why, "jwks_url", "security")],
            )
        return url

    def fetch(self, url: str) -> dict[str, Any]:
        cached = self._cache.get(url)
        if cached is not None and time.monotonic() - cached[0] < self._max_age:
            return cached[1]
        request = self._client.build_request("GET", url, headers={"Accept": "application/json"})
        try:
            response = send_capped(
                self._client,
                request,
                who="a client's jwks_url",
                limit=self._limit,
                setting="PARTNER_MAX_DOCUMENT_BYTES",
            )
            response.raise_for_status()
            key_set = response.json()
        except PartnerError as exc:
            raise PartnerUnavailable(
                f"the JWK Set at a client's jwks_url could not be read: {exc.text}"
            ) from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise PartnerUnavailable(
                f"the JWK Set at a client's jwks_url could not be read ({type(exc).__name__})"
            ) from exc
        if not isinstance(key_set, dict) or not isinstance(key_set.get("keys"), list):
            raise PartnerUnavailable("the document at a client's jwks_url is not a JWK Set")
        self._cache[url] = (time.monotonic(), key_set)
        return key_set

    def close(self) -> None:
        self._client.close()
