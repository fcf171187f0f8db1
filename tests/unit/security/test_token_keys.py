"""Our access-token keys: a replaced key verifies until its tokens could have expired, a
retired one at once; every holder of a ``TokenKeyFiles`` sees a rotation on its next use;
tokens carry and must carry our audience (ADR 0026)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from payerbridge.errors import Unauthenticated
from payerbridge.security.model import AccessClaims, DatedKey
from payerbridge.security.tokens import KeysInForce, TokenVerifier, keys_in_force, sign_access_token
from payerbridge.store.token_keys import TokenKeyFiles, rotate_token_keys
from payerbridge.types import ClientId

BASE = "https://oldplan.example"
AUDIENCE = f"{BASE}/fhir"
GRACE = timedelta(minutes=6)


def _key() -> ECKey:
    key = ECKey.generate_key("P-256", private=True)
    return ECKey.import_key(key.as_dict(private=True), {"kid": key.thumbprint()})


def _claims(now: datetime, lifetime: timedelta = timedelta(minutes=5)) -> AccessClaims:
    return AccessClaims(
        client_id=ClientId("newplan"),
        scopes=frozenset({"system/*.rs"}),
        issued_at=now,
        expires_at=now + lifetime,
        token_id="t1",
    )


def test_a_replaced_key_verifies_until_the_tokens_it_signed_have_expired() -> None:
    made = datetime(2026, 11, 1, tzinfo=UTC)
    old, new = DatedKey(_key(), made), DatedKey(_key(), made + timedelta(days=30))
    during = keys_in_force([old, new], now=new.created_at + GRACE / 2, grace=GRACE)
    assert during.signing is new.key and during.accepted == (new.key, old.key)
    after = keys_in_force([new, old], now=new.created_at + GRACE, grace=GRACE)
    assert after.signing is new.key and after.accepted == (new.key,)


def test_a_token_needs_our_audience_and_a_key_in_force(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    files = KeysInForce(TokenKeyFiles(tmp_path, look_seconds=0), grace=GRACE)
    ticks = [0.0]  # the other process's monotonic clock, moved by hand
    other = KeysInForce(  # another server process on the same keys
        TokenKeyFiles(tmp_path, monotonic=lambda: ticks[0]), grace=GRACE
    )
    verifier = TokenVerifier(other, issuer=BASE, audience=AUDIENCE)
    # Longer-lived than the grace (a key's grace follows the server's token lifetime).
    long = _claims(now, timedelta(hours=1))
    token = sign_access_token(long, files.current(now), issuer=BASE, audience=AUDIENCE)
    assert jwt.decode(token, files.current(now).signing).claims["aud"] == AUDIENCE
    assert verifier.verify(token, now=now).client_id == "newplan"
    elsewhere = sign_access_token(
        _claims(now), files.current(now), issuer=BASE, audience="https://other.example/fhir"
    )
    with pytest.raises(Unauthenticated, match="aud"):
        verifier.verify(elsewhere, now=now)
    unaddressed = jwt.encode(
        {"alg": "ES256", "kid": files.current(now).signing.kid},
        {"iss": BASE, "client_id": "newplan", "scope": "x", "iat": 1, "exp": 2**40, "jti": "j"},
        files.current(now).signing,
        algorithms=["ES256"],
    )
    with pytest.raises(Unauthenticated, match="aud"):
        verifier.verify(unaddressed, now=now)

    # A rotation: the next token is signed by the new key, seen by the other process once
    # it looks again (at most 50 ms later); the old token (already verified and cached)
    # still passes within the grace.
    old_kid = other.current(now).signing.kid
    new_kid = rotate_token_keys(tmp_path)
    assert files.current(now).signing.kid == new_kid
    ticks[0] += 0.049
    assert other.current(now).signing.kid == old_kid
    ticks[0] += 0.001
    assert other.current(now).signing.kid == new_kid
    assert verifier.verify(token, now=now).client_id == "newplan"
    # ... but not once its tokens could have expired, nor after the key is retired.
    with pytest.raises(Unauthenticated, match="retired"):
        verifier.verify(token, now=now + GRACE + timedelta(seconds=5))
    fresh = sign_access_token(_claims(now), files.current(now), issuer=BASE, audience=AUDIENCE)
    assert verifier.verify(fresh, now=now).client_id == "newplan"
    rotate_token_keys(tmp_path, retire_previous=True)
    assert len(list(tmp_path.glob("access-token-*.pem"))) == 1
    ticks[0] += 0.05
    with pytest.raises(Unauthenticated, match="retired"):
        verifier.verify(fresh, now=now)
