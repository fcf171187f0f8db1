"""The token endpoint's use case on fakes: SMART Backend Services assertions signed with
real RS384 and ES384 keys, every refusal audited."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from payerbridge.errors import Unauthenticated
from payerbridge.security.assertions import CLIENT_ASSERTION_TYPE
from payerbridge.security.model import (
    MEMBER_MATCH_SCOPE,
    OAuthError,
    RegisteredClient,
    TrustAnchors,
    require_scope,
    resource_scope,
)
from payerbridge.security.service import TokenPolicy, TokenService, authenticate
from payerbridge.security.tokens import AccessTokenKeys, TokenVerifier
from payerbridge.types import ClientId
from tests.fakes import (
    InMemoryAssertionLedger,
    InMemoryAuditLog,
    InMemoryClientDirectory,
    InMemoryTransactions,
    StaticKeySets,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BASE = "https://payer.example"
TOKEN_URL = f"{BASE}/auth/token"
SCOPES = f"system/*.rs {MEMBER_MATCH_SCOPE}"


def _named(key: Any) -> Any:
    return type(key).import_key(key.as_dict(private=True), {"kid": key.thumbprint()})


EC_KEY = _named(ECKey.generate_key("P-384", private=True))
RSA_KEY = _named(RSAKey.generate_key(2048, private=True))
OTHER_KEY = _named(ECKey.generate_key("P-384", private=True))


def _public(*keys: Any) -> dict[str, Any]:
    return {"keys": [{**k.as_dict(private=False), "kid": k.kid} for k in keys]}


def assertion(
    key: Any = EC_KEY,
    *,
    client_id: str = "newplan",
    alg: str = "ES384",
    **claims: Any,
) -> str:
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(minutes=4)).timestamp()),
        "jti": str(uuid.uuid4()),
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": key.kid}, body, key, algorithms=[alg])


def form(token: str, scope: str = SCOPES) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": token,
    }


class World:
    def __init__(self) -> None:
        self.audit = InMemoryAuditLog()
        self.consenting: set[str] = {"p1"}  # members whose consent permits the clients
        self.clients = InMemoryClientDirectory(
            RegisteredClient(
                ClientId("newplan"),
                "New Plan",
                "1234567893",
                frozenset(SCOPES.split()),
                jwks=_public(EC_KEY, RSA_KEY),
            ),
            RegisteredClient(
                ClientId("by-url"),
                "Url Plan",
                "1245319599",
                frozenset(["system/*.rs"]),
                jwks_url="https://keys.example/jwks",
            ),
        )
        self.ledger = InMemoryAssertionLedger()
        self.key_sets = StaticKeySets({"https://keys.example/jwks": _public(EC_KEY)})
        keys = AccessTokenKeys(
            signing=_named(ECKey.generate_key("P-256", private=True)), accepted=()
        )
        keys = AccessTokenKeys(signing=keys.signing, accepted=(keys.signing,))
        self.service = TokenService(
            clients=self.clients,
            assertions=self.ledger,
            key_sets=self.key_sets,
            transactions=InMemoryTransactions(self.audit, self.clients, self.ledger),
            keys=keys,
            policy=TokenPolicy(
                issuer=BASE,
                audience=f"{BASE}/fhir",
                token_url=TOKEN_URL,
                registration_url=f"{BASE}/auth/register",
                access_token_lifetime=timedelta(minutes=5),
                clock_skew=timedelta(seconds=60),
                udap_scopes=frozenset(SCOPES.split()),
            ),
            trust=TrustAnchors(()),
            new_id=lambda: str(uuid.uuid4()),
            member_consent=lambda member, client, now: member in self.consenting,
        )
        self.verifier = TokenVerifier(keys, issuer=BASE, audience=f"{BASE}/fhir")

    def refused(self, body: dict[str, str]) -> OAuthError:
        with pytest.raises(OAuthError) as caught:
            self.service.grant(body, now=NOW)
        last = self.audit.events[-1]
        assert (last.action, last.outcome) == ("auth.token", "failure")
        assert last.detail["reason"] == caught.value.error
        return caught.value


@pytest.mark.parametrize(("key", "alg"), [(EC_KEY, "ES384"), (RSA_KEY, "RS384")])
def test_a_valid_assertion_gets_a_token_that_authenticates(key: Any, alg: str) -> None:
    world = World()
    grant = world.service.grant(form(assertion(key, alg=alg)), now=NOW)
    assert grant.expires_in == 300 and set(grant.scope.split()) == set(SCOPES.split())
    principal = authenticate(
        grant.access_token, verifier=world.verifier, clients=world.clients, now=NOW
    )
    assert principal.client_id == "newplan" and principal.npi == "1234567893"
    assert (world.audit.events[-1].action, world.audit.events[-1].outcome) == (
        "auth.token",
        "success",
    )


def test_keys_registered_by_url_are_read_from_it() -> None:
    world = World()
    grant = world.service.grant(
        form(assertion(client_id="by-url"), scope="system/Patient.rs"), now=NOW
    )
    assert grant.scope == "system/Patient.rs"
    assert world.key_sets.fetched == ["https://keys.example/jwks"]


@pytest.mark.parametrize(
    ("make", "error", "text"),
    [
        (lambda: assertion(OTHER_KEY), "invalid_client", "signature does not verify"),
        (
            lambda: assertion(exp=int((NOW - timedelta(minutes=2)).timestamp())),
            "invalid_client",
            "expired",
        ),
        (
            lambda: assertion(exp=int((NOW + timedelta(minutes=10)).timestamp())),
            "invalid_client",
            "at most five minutes",
        ),
        (
            lambda: assertion(iat=int((NOW + timedelta(minutes=3)).timestamp())),
            "invalid_client",
            "iat is in the future",
        ),
        (lambda: assertion(aud="https://elsewhere.example/token"), "invalid_client", "aud"),
        (lambda: assertion(client_id="stranger"), "invalid_client", "not registered"),
        (lambda: assertion(jti=None), "invalid_client", "jti"),
        (lambda: assertion(sub="someone-else"), "invalid_client", "sub"),
        (lambda: "not.a.jwt", "invalid_client", "not a signed JWT"),
    ],
)
def test_a_bad_assertion_is_refused_and_audited(make: Any, error: str, text: str) -> None:
    refusal = World().refused(form(make()))
    assert refusal.error == error and refusal.status == 401
    assert text in refusal.description


def test_an_assertion_is_used_once() -> None:
    world = World()
    token = assertion()
    world.service.grant(form(token), now=NOW)
    refusal = world.refused(form(token))
    assert "replay" in refusal.description


def test_a_scope_the_client_was_not_given_is_refused_by_name() -> None:
    refusal = World().refused(form(assertion(), scope="system/*.rs payerbridge/operator"))
    assert refusal.error == "invalid_scope" and "payerbridge/operator" in refusal.description


def test_resource_scopes_beyond_the_registration_are_left_out_of_the_grant() -> None:
    """A client asking for every type it knows (smart-fetch does) gets those it was
    registered for, and the token says which; nothing it was not given, ever."""
    world = World()
    narrow = dataclasses.replace(
        world.clients.clients[ClientId("newplan")],
        scopes=frozenset({"system/Patient.rs", "system/Condition.rs"}),
    )
    world.clients.clients[narrow.client_id] = narrow
    asked = "system/Patient.read system/Condition.read system/Observation.read system/*.rs"
    grant = world.service.grant(form(assertion(), scope=asked), now=NOW)
    assert grant.scope == "system/Condition.read system/Patient.read"
    claims = world.verifier.verify(grant.access_token, now=NOW)
    assert claims.scopes == {"system/Patient.read", "system/Condition.read"}
    refusal = world.refused(form(assertion(), scope="system/Observation.rs system/*.read"))
    assert refusal.error == "invalid_scope" and "Observation" in refusal.description


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"client_assertion_type": "urn:other"}, "invalid_request"),
        ({"client_assertion": ""}, "invalid_request"),
        ({"scope": ""}, "invalid_scope"),
    ],
)
def test_a_malformed_request_is_refused(change: dict[str, str], error: str) -> None:
    assert World().refused({**form(assertion()), **change}).error == error


def test_a_revoked_clients_tokens_stop_at_once() -> None:
    world = World()
    grant = world.service.grant(form(assertion()), now=NOW)
    with world.service.transactions.begin() as unit:
        world.clients.revoke(unit, ClientId("newplan"), at=NOW)
    with pytest.raises(Unauthenticated):
        authenticate(grant.access_token, verifier=world.verifier, clients=world.clients, now=NOW)
    assert world.refused(form(assertion())).error == "invalid_client"


def test_an_expired_or_foreign_token_does_not_authenticate() -> None:
    world = World()
    grant = world.service.grant(form(assertion()), now=NOW)
    with pytest.raises(Unauthenticated, match="expired"):
        authenticate(
            grant.access_token,
            verifier=world.verifier,
            clients=world.clients,
            now=NOW + timedelta(minutes=6),
        )
    other = World()
    with pytest.raises(Unauthenticated, match="not one this server issued"):
        authenticate(grant.access_token, verifier=other.verifier, clients=world.clients, now=NOW)


def test_a_member_scoped_token_is_issued_only_under_the_members_consent() -> None:
    world = World()
    grant = world.service.grant(
        {**form(assertion(), scope="patient/*.rs"), "patient": "p1"}, now=NOW
    )
    principal = authenticate(
        grant.access_token, verifier=world.verifier, clients=world.clients, now=NOW
    )
    assert principal.patient == "p1"
    require_scope(principal, resource_scope("Observation", "r"))  # as patient/Observation.r
    refusal = world.refused({**form(assertion(), scope="patient/*.rs"), "patient": "p2"})
    assert refusal.error == "invalid_grant" and "consent" in refusal.description


@pytest.mark.parametrize(
    ("scope", "patient", "text"),
    [
        ("system/*.rs", "p1", "patient/ scopes only"),
        ("patient/*.rs", None, "need the patient parameter"),
        ("patient/*.rs", "../x", "FHIR id"),
    ],
)
def test_a_member_scoped_request_must_be_whole(scope: str, patient: str | None, text: str) -> None:
    body = form(assertion(), scope=scope)
    if patient is not None:
        body["patient"] = patient
    assert text in World().refused(body).description
