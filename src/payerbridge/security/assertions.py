"""A client's authentication JWT (SMART Backend Services ``private_key_jwt``), checked
(pure: the keys and the time are given).

SMART asks: ``iss`` and ``sub`` both the client id, ``aud`` our token URL, ``exp`` at
most five minutes ahead, a ``jti`` never seen before, signed RS384 or ES384 with a key
of the client's JWK Set named by ``kid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from payerbridge.errors import OAuthErrorCode
from payerbridge.security.model import OAuthError
from payerbridge.types import ClientId

__all__ = [
    "ASSERTION_ALGORITHMS",
    "CERTIFICATE_HEADERS",
    "CLIENT_ASSERTION_TYPE",
    "MAX_ASSERTION_LIFETIME",
    "AssertionClaims",
    "ClaimsCheck",
    "UnverifiedAssertion",
    "assertion_claims",
    "check_assertion_claims",
    "check_key_set",
    "read_unverified",
    "verify_assertion",
]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class ClaimsCheck:
    """What a client's JWT is checked against: the audience it must name (our token or
    registration URL), and the instant it is judged at, with the clock skew allowed."""

    audience: str
    now: datetime
    skew: timedelta


class CertificateHeaders(JWSRegistry):
    """joserfc's registry with room for an ``x5c`` header: a UDAP JWT carries its
    certificate chain there, past the library's default limit of 512 bytes."""

    max_header_length = 16 * 1024


CERTIFICATE_HEADERS = CertificateHeaders(algorithms=["RS256", "RS384", "ES256", "ES384"])
ASSERTION_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = timedelta(minutes=5)


def assertion_claims(issuer: str, audience: str, *, now: datetime, token_id: str) -> dict[str, Any]:
    """The claims of a JWT we send to be checked as SMART and FAST ask (our assertions,
    software statements): ``issuer`` as its subject too, for ``audience``, valid as long
    as allowed, used once."""
    issued = int(now.timestamp())
    return {
        "iss": issuer,
        "sub": issuer,
        "aud": audience,
        "iat": issued,
        "exp": issued + int(MAX_ASSERTION_LIFETIME.total_seconds()),
        "jti": token_id,
    }


@dataclass(frozen=True)
class UnverifiedAssertion:
    """What an assertion says before its signature is checked: enough to find the client
    and its key, never to trust."""

    client_id: ClientId
    header: dict[str, Any]


@dataclass(frozen=True)
class AssertionClaims:
    client_id: ClientId
    token_id: str  # jti
    expires_at: datetime
    claims: dict[str, Any]


def _invalid(description: str) -> OAuthError:
    return OAuthError(OAuthErrorCode.INVALID_CLIENT, description, status=401)


def read_unverified(assertion: str) -> UnverifiedAssertion:
    """The header and the issuer of an assertion, unverified."""
    try:
        compact = jws.extract_compact(assertion.encode(), registry=CERTIFICATE_HEADERS)
        header = dict(compact.headers())
        claims = orjson.loads(compact.payload)
    except (JoseError, ValueError, orjson.JSONDecodeError) as exc:
        raise _invalid("client_assertion is not a signed JWT") from exc
    if not isinstance(claims, dict):
        raise _invalid("client_assertion's payload is not a JSON object")
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise _invalid("client_assertion has no iss (the client id)")
    if claims.get("sub") != issuer:
        raise _invalid("client_assertion sub must equal iss (the client id)")
    return UnverifiedAssertion(ClientId(issuer), dict(header))


def verify_assertion(
    assertion: str,
    header: dict[str, Any],
    jwks: dict[str, Any],
    client_id: ClientId,
    check: ClaimsCheck,
) -> AssertionClaims:
    """The assertion's claims, when its signature, audience and times hold (SMART:
    RS384 or ES384, by a key of the client's JWK Set named by ``kid``; ``header`` as
    ``read_unverified`` read it)."""
    if header.get("alg") not in ASSERTION_ALGORITHMS:
        raise _invalid("client_assertion must be signed with RS384 or ES384")
    if not isinstance(header.get("kid"), str):
        raise _invalid("client_assertion header has no kid naming the signing key")
    try:
        key_set = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise _invalid("the client's registered JWK Set cannot be read") from exc
    try:
        token = jwt.decode(assertion, key_set, algorithms=list(ASSERTION_ALGORITHMS))
    except JoseError as exc:
        raise _invalid(
            "client_assertion signature does not verify with the client's registered keys"
        ) from exc
    return check_assertion_claims(dict(token.claims), client_id, check)


def check_assertion_claims(
    claims: dict[str, Any], client_id: ClientId, check: ClaimsCheck
) -> AssertionClaims:
    """The checks of a client's authentication JWT once its signature holds (SMART and
    UDAP alike): the client, the audience, the times and a jti."""
    audience, now, skew = check.audience, check.now, check.skew
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise _invalid("client_assertion iss and sub must both be the client id")
    expires_at = _time_claim(claims, "exp", required=True)
    assert expires_at is not None
    if expires_at <= now - skew:
        raise _invalid("client_assertion has expired")
    if expires_at > now + MAX_ASSERTION_LIFETIME + skew:
        raise _invalid("client_assertion exp must be at most five minutes ahead")
    for name in ("iat", "nbf"):
        moment = _time_claim(claims, name, required=False)
        if moment is not None and moment > now + skew:
            raise _invalid(f"client_assertion {name} is in the future")
    audiences = claims.get("aud")
    if audience not in (audiences if isinstance(audiences, list) else [audiences]):
        raise _invalid(f"client_assertion aud must be this server's token URL ({audience})")
    token_id = claims.get("jti")
    if not isinstance(token_id, str) or not token_id or len(token_id) > 255:
        raise _invalid("client_assertion needs a jti (a unique id, at most 255 characters)")
    return AssertionClaims(client_id, token_id, expires_at, claims)


def _time_claim(claims: dict[str, Any], name: str, *, required: bool) -> datetime | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"client_assertion {name} must be a NumericDate (seconds since 1970)")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise _invalid(f"client_assertion {name} is out of range") from exc


def check_key_set(jwks: Any) -> str | None:
    """What is wrong with a JWK Set a client registers, or None: public RSA or EC keys,
    each named by ``kid``, no private parts."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        return "jwks must be a JWK Set: an object with a non-empty keys array"
    for key in keys:
        if not isinstance(key, dict) or not isinstance(key.get("kid"), str):
            return "every key of the JWK Set needs a kid"
        if key.get("kty") not in ("RSA", "EC"):
            return "the JWK Set's keys must be RSA or EC (for RS384 or ES384)"
        if "d" in key:
            return "the JWK Set holds a private key: register the public half only"
    try:
        KeySet.import_key_set(jwks)
    except (JoseError, ValueError, TypeError, KeyError):
        return "the JWK Set's keys cannot be read"
    return None
