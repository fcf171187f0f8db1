"""Our access tokens: JWTs signed ES256 by this server's key, checked on every request
(pure: keys, time and ids are given).

ES256 because every request verifies one: about 90 µs against 340 µs for ES384 on the
same host, and a token seen before is not verified again (``TokenVerifier``'s cache).
The key set holds the signing key and those it replaced, so a rotation does not cut
off tokens already issued; the public half is published at our JWKS URL. A replaced key
is accepted only until the tokens it could have signed have expired (``keys_in_force``),
and every process reads the key set afresh when it changes (``TokenKeySource``), so a
rotation, or a key retired at once, holds without a restart (ADR 0026).

Each token names its audience (``aud``, RFC 9068): our FHIR base, the resource server
the whole API behind this base URL is; a token without it, or for another, is refused.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Protocol

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from payerbridge.errors import Issue, Unauthenticated
from payerbridge.security.model import AccessClaims, DatedKey
from payerbridge.security.ports import DatedKeys
from payerbridge.types import ClientId, MemberId

__all__ = [
    "ACCESS_TOKEN_ALGORITHM",
    "AccessTokenKeys",
    "KeysInForce",
    "TokenKeySource",
    "TokenVerifier",
    "keys_in_force",
    "public_jwk",
    "sign_access_token",
]

ACCESS_TOKEN_ALGORITHM = "ES256"


@dataclass(frozen=True)
class AccessTokenKeys:
    """The key that signs new tokens and every key whose tokens are still accepted."""

    signing: ECKey
    accepted: tuple[ECKey, ...]

    @cached_property
    def key_set(self) -> KeySet:
        return KeySet(list(self.accepted))

    @cached_property
    def key_ids(self) -> frozenset[str]:
        return frozenset(str(key.kid) for key in self.accepted)

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(key, ACCESS_TOKEN_ALGORITHM) for key in self.accepted]}

    def current(self, now: datetime) -> AccessTokenKeys:
        """A fixed key set is its own source (``TokenKeySource``)."""
        return self


class TokenKeySource(Protocol):
    def current(self, now: datetime) -> AccessTokenKeys:
        """The keys in force now, as every process sees them (``KeysInForce``)."""
        ...


class KeysInForce:
    """The keys in force (``keys_in_force``) among those ``source`` holds now, worked out
    again only when they change or a replaced key's grace ends (``TokenKeySource``)."""

    def __init__(self, source: DatedKeys, *, grace: timedelta) -> None:
        self._source = source
        self._grace = grace
        # The keys in force, until when they stay so (the next replaced key's end), and
        # the keys read they were worked out from (a refresh meanwhile makes them stale).
        self._in_force: tuple[AccessTokenKeys, datetime, tuple[DatedKey, ...]] | None = None

    def current(self, now: datetime) -> AccessTokenKeys:
        read = self._source.dated_keys()
        in_force = self._in_force
        if in_force is not None and in_force[2] is read and now < in_force[1]:
            return in_force[0]
        keys = keys_in_force(read, now=now, grace=self._grace)
        ends = [
            newer.created_at + self._grace
            for newer in sorted(read, key=lambda dated: dated.created_at)[1:]
            if now < newer.created_at + self._grace
        ]
        self._in_force = (keys, min(ends, default=datetime.max.replace(tzinfo=UTC)), read)
        return keys


def keys_in_force(keys: Sequence[DatedKey], *, now: datetime, grace: timedelta) -> AccessTokenKeys:
    """The newest key signs; a key replaced by a newer one stays accepted for ``grace``
    after its successor was made (the longest a token it signed can live), then not."""
    if not keys:
        raise ValueError("no access-token key")
    ordered = sorted(keys, key=lambda dated: dated.created_at, reverse=True)
    accepted = [ordered[0].key] + [
        older.key
        for newer, older in zip(ordered, ordered[1:], strict=False)
        if now < newer.created_at + grace
    ]
    return AccessTokenKeys(signing=ordered[0].key, accepted=tuple(accepted))


def public_jwk(key: ECKey, algorithm: str) -> dict[str, Any]:
    """A key's public half as a JWK, named and marked for signatures with ``algorithm``."""
    return {**key.as_dict(private=False), "kid": key.kid, "use": "sig", "alg": algorithm}


def sign_access_token(
    claims: AccessClaims, keys: AccessTokenKeys, *, issuer: str, audience: str
) -> str:
    payload: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
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
    """Checks bearer tokens against the keys in force; remembers the ones it has verified
    until they expire (bounded), so a client's steady stream of calls pays the signature
    once, and drops one whose key was retired meanwhile."""

    def __init__(
        self, keys: TokenKeySource, *, issuer: str, audience: str, cache_size: int = 4096
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._cache: OrderedDict[str, tuple[AccessClaims, str]] = OrderedDict()
        self._cache_size = cache_size

    def verify(self, token: str, *, now: datetime) -> AccessClaims:
        keys = self._keys.current(now)
        cached = self._cache.get(token)
        if cached is None:
            cached = self._decode(token, keys)
            self._cache[token] = cached
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        claims, key_id = cached
        if key_id not in keys.key_ids:
            self._cache.pop(token, None)
            raise _unauthenticated("the access token was signed by a key this server retired")
        if claims.expires_at <= now:
            self._cache.pop(token, None)
            raise _unauthenticated("the access token has expired")
        return claims

    def _decode(self, token: str, keys: AccessTokenKeys) -> tuple[AccessClaims, str]:
        try:
            decoded = jwt.decode(token, keys.key_set, algorithms=[ACCESS_TOKEN_ALGORITHM])
        except (JoseError, ValueError) as exc:
            raise _unauthenticated("the access token is not one this server issued") from exc
        claims = decoded.claims
        if claims.get("iss") != self._issuer:
            raise _unauthenticated("the access token was issued for another server")
        audience = claims.get("aud")
        if audience != self._audience and not (
            isinstance(audience, list) and self._audience in audience
        ):
            raise _unauthenticated("the access token is not meant for this server (aud)")
        try:
            confirmation = claims.get("cnf") or {}
            key_id = str(decoded.header["kid"])
            return AccessClaims(
                client_id=ClientId(str(claims["client_id"])),
                scopes=frozenset(str(claims["scope"]).split()),
                issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
                token_id=str(claims["jti"]),
                patient=MemberId(claims["patient"]) if "patient" in claims else None,
                certificate_thumbprint=confirmation.get("x5t#S256"),
            ), key_id
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _unauthenticated("the access token lacks claims this server puts in") from exc
