"""Access tokens from a plan's FHIR server by SMART Backend Services: our signed
assertion (ES384 with an EC key, RS384 with an RSA key) for ``client_credentials``, the
token cached until shortly before it expires and dropped when the server refuses it.

The token endpoint is the configured ``token_url``, else the one the server's
``<base>/.well-known/smart-configuration`` names, which must then be on the origin of
the FHIR base: an assertion is sent nowhere else unless an operator named the endpoint.
Every call is bounded by the timeout the caller gives (what is left of its deadline).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, RSAKey

from payerbridge.clock import utcnow
from payerbridge.errors import PartnerAuthRejected, PartnerRejected, PartnerUnavailable
from payerbridge.net.origins import same_origin
from payerbridge.net.transport import AddressRefused, AnswerTooLarge, oauth_error, send_bounded
from payerbridge.security.assertions import CLIENT_ASSERTION_TYPE, assertion_claims

__all__ = ["SigningKey", "SmartClient", "SmartTokens", "signing_key"]

logger = logging.getLogger(__name__)

_EARLY_SECONDS = 30  # a token this close to expiry is renewed before use
DOCUMENT_LIMIT = 2 * 1024 * 1024  # a SMART configuration or a token answer


class SigningKey:
    """Our private key for assertions, with the algorithm SMART pairs with its type."""

    def __init__(self, key: ECKey | RSAKey, alg: str, kid: str) -> None:
        self.key, self.alg, self.kid = key, alg, kid

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": self.alg, "kid": self.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=[self.alg])


def signing_key(jwk: dict[str, Any]) -> SigningKey:
    """Our key from its JWK (private, EC P-384 for ES384 or RSA for RS384); ValueError
    saying what is wrong (never the key)."""
    try:
        key = JWKRegistry.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"the private key is not a readable JWK ({type(exc).__name__})") from None
    if not key.is_private:
        raise ValueError("the key is a public key: the private JWK is needed to sign")
    if isinstance(key, ECKey):
        if key.curve_name != "P-384":
            raise ValueError("an EC key must be on P-384 (ES384)")
        alg = "ES384"
    elif isinstance(key, RSAKey):
        alg = "RS384"
    else:
        raise ValueError("the key must be EC (ES384) or RSA (RS384)")
    kid = jwk.get("kid")
    return SigningKey(key, alg, kid if isinstance(kid, str) and kid else key.thumbprint())


@dataclass(frozen=True)
class SmartClient:
    """Who we are at a source (SMART Backend Services): our client id, the key our
    assertions are signed with, the scope we ask, and its token URL (None: the one its
    SMART configuration names)."""

    client_id: str
    key: SigningKey
    scope: str
    token_url: str | None = None


class SmartTokens:
    """The access token of one source (thread-safe: the types of a call ask at once,
    and one of them fetches while the others wait)."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        source_id: str,
        base_url: str,
        us: SmartClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._source = source_id
        self._base = base_url
        self._client_id = us.client_id
        self._key = us.key
        self._scope = us.scope
        self._token_url = us.token_url
        self._clock = clock
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self.requested = 0  # tokens asked for, for the logs and the tests

    def authorization(self, timeout: float) -> str:
        """``Bearer <token>``: the cached one while it is fresh, else a new one.
        PartnerUnavailable, PartnerAuthRejected or PartnerRejected when none is had."""
        with self._lock:
            if self._token is not None and self._token[1] - _EARLY_SECONDS > self._clock():
                return f"Bearer {self._token[0]}"
            self._token = self._request(timeout)
            return f"Bearer {self._token[0]}"

    def forget(self, refused: str) -> None:
        """Drop ``refused`` (the server answered 401 to it): the next call asks anew."""
        with self._lock:
            if self._token is not None and f"Bearer {self._token[0]}" == refused:
                self._token = None

    def _request(self, timeout: float) -> tuple[str, float]:
        token_url = self._token_url or self._discover(timeout)
        claims = assertion_claims(
            self._client_id, token_url, now=utcnow(), token_id=str(uuid.uuid4())
        )
        form = {
            "grant_type": "client_credentials",
            "scope": self._scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self._key.sign(claims),
        }
        started = self._clock()
        response = self._send("POST", token_url, timeout, data=form)
        self.requested += 1
        if response.status_code in (400, 401, 403):
            raise PartnerAuthRejected(
                f"source '{self._source}' refused our token request ({oauth_error(response)}): "
                "check its client id, registered key and scope",
                status=response.status_code,
            )
        if response.status_code != 200:
            raise PartnerUnavailable(
                f"source '{self._source}' token endpoint answered HTTP {response.status_code}",
                status=response.status_code,
            )
        body = self._json(response, "token answer")
        token, expires_in = body.get("access_token"), body.get("expires_in", 300)
        if not isinstance(token, str) or not isinstance(expires_in, int | float):
            raise PartnerRejected(f"source '{self._source}' token answer has no access_token")
        logger.info("source token obtained", extra={"source_id": self._source})
        return token, started + float(expires_in)

    def _discover(self, timeout: float) -> str:
        response = self._send("GET", f"{self._base}/.well-known/smart-configuration", timeout)
        if response.status_code != 200:
            raise PartnerUnavailable(
                f"source '{self._source}' SMART configuration answered HTTP {response.status_code}",
                status=response.status_code,
            )
        token_url = self._json(response, "SMART configuration").get("token_endpoint")
        if not isinstance(token_url, str) or not token_url.startswith(("https://", "http://")):
            raise PartnerRejected(
                f"source '{self._source}' SMART configuration names no token_endpoint"
            )
        if not same_origin(token_url, self._base):
            raise PartnerRejected(
                f"source '{self._source}' SMART configuration names a token endpoint on "
                "another origin than its FHIR base; no assertion is sent there (set the "
                "source's token_url to approve it)"
            )
        self._token_url = token_url
        return token_url

    def _send(
        self, method: str, url: str, timeout: float, data: dict[str, str] | None = None
    ) -> httpx.Response:
        request = self._client.build_request(
            method,
            url,
            data=data,
            headers={"Accept": "application/json"},
            timeout=httpx.Timeout(max(timeout, 0.001)),
        )
        who = f"source '{self._source}' {'token endpoint' if data else 'SMART configuration'}"
        try:
            return send_bounded(self._client, request, limit=DOCUMENT_LIMIT)
        except AnswerTooLarge as exc:
            raise PartnerRejected(f"{who} sent more than {exc.limit} bytes") from exc
        except AddressRefused as exc:
            raise PartnerRejected(f"{who} is not called: {exc}") from exc
        except httpx.HTTPError as exc:
            raise PartnerUnavailable(f"{who} is unreachable ({type(exc).__name__})") from exc

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise PartnerRejected(f"source '{self._source}' {what} is not a JSON object")
        return body
