"""Our access tokens through HTTP (issue 48, ADR 0026): they carry our audience and a
token without it is refused; ``payerbridge keys rotate`` takes effect in the running
server at its next request (new tokens signed by the new key, the old ones still good
until they expire), and ``--retire-previous`` cuts the old key's tokens off at once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey

from payerbridge.security.assertions import CLIENT_ASSERTION_TYPE
from tests.servers import ServerProcess, new_signing_key, public_jwk

KEY = new_signing_key()


@pytest.fixture
def payer(server: Callable[..., ServerProcess]) -> ServerProcess:
    payer = server("payer")
    payer.register_client("reader", scope="system/*.rs", jwks={"keys": [public_jwk(KEY)]})
    return payer


def token(payer: ServerProcess) -> str:
    now = int(time.time())
    claims = {
        "iss": "reader",
        "sub": "reader",
        "aud": f"{payer.base_url}/auth/token",
        "iat": now,
        "exp": now + 240,
        "jti": str(uuid.uuid4()),
    }
    assertion = jwt.encode({"alg": "ES384", "kid": KEY.kid}, claims, KEY, algorithms=["ES384"])
    answer = httpx.post(
        f"{payer.base_url}/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/*.rs",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def kid(access_token: str) -> str:
    return str(jws.extract_compact(access_token.encode()).protected["kid"])


def status(payer: ServerProcess, access_token: str) -> int:
    with payer.client_with(access_token) as client:
        return client.get("/fhir/Patient", params={"identifier": "x"}).status_code


def signing_key(payer: ServerProcess) -> ECKey:
    newest = sorted((payer.data_dir / "keys").glob("access-token-*.pem"))[-1]
    key = ECKey.import_key(newest.read_bytes())
    return ECKey.import_key(key.as_dict(private=True), {"kid": key.thumbprint()})


def test_tokens_carry_our_audience_and_a_rotation_needs_no_restart(payer: ServerProcess) -> None:
    first = token(payer)
    claims = jwt.decode(first, signing_key(payer)).claims
    assert claims["aud"] == f"{payer.fhir_base}"
    assert status(payer, first) == 200
    # Signed by our own key, but for another audience or none: refused.
    key = signing_key(payer)
    for audience in ("https://other.example/fhir", None):
        forged = {**claims, "aud": audience, "jti": str(uuid.uuid4())}
        forged = {name: value for name, value in forged.items() if value is not None}
        text = jwt.encode({"alg": "ES256", "kid": key.kid}, forged, key, algorithms=["ES256"])
        with payer.client_with(text) as client:
            refused = client.get("/fhir/Patient", params={"identifier": "x"})
        assert refused.status_code == 401, refused.text
        assert "aud" in refused.json()["issue"][0]["details"]["text"]

    rotated = payer.cli("keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    second = token(payer)
    assert kid(second) != kid(first) and kid(second) in rotated.stdout
    with payer.anonymous() as anonymous:
        published = {k["kid"] for k in anonymous.get("/auth/jwks").json()["keys"]}
    assert published == {kid(first), kid(second)}
    assert status(payer, first) == 200 and status(payer, second) == 200

    retired = payer.cli("keys", "rotate", "--retire-previous")
    assert retired.returncode == 0, retired.stderr
    for old in (first, second):
        with payer.client_with(old) as client:
            refused = client.get("/fhir/Patient", params={"identifier": "x"})
        assert refused.status_code == 401, refused.text
    third = token(payer)
    assert kid(third) in retired.stdout and status(payer, third) == 200
    with payer.anonymous() as anonymous:
        assert [k["kid"] for k in anonymous.get("/auth/jwks").json()["keys"]] == [kid(third)]
