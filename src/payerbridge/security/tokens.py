"""Our access tokens: JWTs signed ES256 by this server's key, checked on every request
(pure: keys, time and ids are given).

ES256 because every request verifies one: about 90 µs against 340 µs for ES384 on the
same host, and a token seen before is not verified again (``TokenVerifier``'s cache).
The key set holds the signing key and those it replaced, so a rotation does not cut
off tokens already issued; the public half is published at our JWKS URL.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from payerbridge.errors import Issue, Unauthenticated
from payerbridge.security.model import AccessClaims
from payerbridge.types import ClientId, MemberId

__all__ = [
    "ACCESS_TOKEN_ALGORITHM",
    "AccessTokenKeys",
    "TokenVerifier",
    "public_jwk",
    "sign_access_token",
]

ACCESS_TOKEN_ALGORITHM = "ES256"


@dataclass(frozen=True)
class AccessTokenKeys:
    """The key that signs new tokens and every key whose tokens are still accepted."""

    signing: ECKey
    accepted: tuple[ECKey, ...]

    @property
    def key_set(self) -> KeySet:
        return KeySet(list(self.accepted))

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(key, ACCESS_TOKEN_ALGORITHM) for key in self.accepted]}


def public_jwk(key: ECKey, algorithm: str) -> dict[str, Any]:
    """A key's public half as a JWK, named and marked for signatures with ``algorithm``."""
    return {**key.as_dict(private=False), "kid": key.kid, "use": "sig", "alg": algorithm}


def sign_access_token(claims: AccessClaims, keys: AccessTokenKeys, *, issuer: str) -> str:
    payload: dict[str, Any] = {
        "iss": issuer,
        "sub": claims.client_id,
        "client_id": claims.client_id,
        "scope": " ".join(sorted(claims.scopes)),
        "iat": int(claims.issued_at.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
        "jti": claims.token_id,
    }
    if claims.patient is not None:
        payload["patient"] = claims.patient
    if claims.certificate_thumbprint is not None:
        payload["cnf"] = {"x5t#S256": claims.certificate_thumbprint}
    header = {"alg": ACCESS_TOKEN_ALGORITHM, "kid": keys.signing.kid, "typ": "at+jwt"}
    return jwt.encode(header, payload, keys.signing, algorithms=[ACCESS_TOKEN_ALGORITHM])


def _unauthenticated(text: str) -> Unauthenticated:
    return Unauthenticated(
        text,
        issues=[
            Issue(
                f"{text}; get a new one from the token endpoint "
                "(SMART Backend Services client_credentials)",
                "Authorization",
                "login",
            )
        ],
    )


class TokenVerifier:
    """Checks bearer tokens against our keys; remembers the ones it has verified until
    they expire (bounded), so a client's steady stream of calls pays the signature once."""

    def __init__(self, keys: AccessTokenKeys, *, issuer: str, cache_size: int = 4096) -> None:
        self._keys = keys
        self._key_set = keys.key_set
        self._issuer = issuer
        self._cache: OrderedDict[str, AccessClaims] = OrderedDict()
        self._cache_size = cache_size

    def verify(self, token: str, *, now: datetime) -> AccessClaims:
        claims = self._cache.get(token)
        if claims is None:
            claims = self._decode(token)
            self._cache[token] = claims
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        if claims.expires_at <= now:
            self._cache.pop(token, None)
            raise _unauthenticated("the access token has expired")
        return claims

    def _decode(self, token: str) -> AccessClaims:
        try:
            decoded = jwt.decode(token, self._key_set, algorithms=[ACCESS_TOKEN_ALGORITHM])
        except (JoseError, ValueError) as exc:
            raise _unauthenticated("the access token is not one this server issued") from exc
        claims = decoded.claims
        if claims.get("iss") != self._issuer:
            raise _unauthenticated("the access token was issued for another server")
        try:
            confirmation = claims.get("cnf") or {}
            return AccessClaims(
                client_id=ClientId(str(claims["client_id"])),
                scopes=frozenset(str(claims["scope"]).split()),
                issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
                token_id=str(claims["jti"]),
                patient=MemberId(claims["patient"]) if "patient" in claims else None,
                certificate_thumbprint=confirmation.get("x5t#S256"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _unauthenticated("the access token lacks claims this server puts in") from exc
