"""JWK Sets read from the URL a client registered (SMART ``jwks_uri``), cached briefly so
that a client's token requests do not each fetch its keys, and re-read when the cache
ages out (a client rotating its keys is seen within minutes)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from payerbridge.errors import PartnerUnavailable

__all__ = ["HttpxKeySetSource"]


class HttpxKeySetSource:
    def __init__(
        self,
        *,
        timeout_seconds: float = 10.0,
        max_age_seconds: float = 300.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds), transport=transport, follow_redirects=False
        )
        self._max_age = max_age_seconds
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def fetch(self, url: str) -> dict[str, Any]:
        cached = self._cache.get(url)
        if cached is not None and time.monotonic() - cached[0] < self._max_age:
            return cached[1]
        try:
            response = self._client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            key_set = response.json()
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
