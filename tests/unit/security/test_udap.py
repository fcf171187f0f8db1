"""UDAP B2B on fakes, with a real certificate chain made here: a client registers itself
with a software statement signed under a trusted anchor, then gets tokens with assertions
carrying its certificate; another anchor, an expired or revoked certificate, a URI the
certificate does not name, or another organization are each refused and audited."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from payerbridge.errors import Unauthenticated
from payerbridge.security.assertions import CLIENT_ASSERTION_TYPE
from payerbridge.security.model import ClientKind, OAuthError, ServerIdentity, TrustAnchors
from payerbridge.security.service import TokenPolicy, TokenService, authenticate
from payerbridge.security.tokens import AccessTokenKeys, TokenVerifier
from payerbridge.security.udap import (
    B2bOrganization,
    OurJwt,
    b2b_assertion,
    read_signed_metadata,
    signed_metadata,
    software_statement,
)
from tests.fakes import (
    InMemoryAssertionLedger,
    InMemoryAuditLog,
    InMemoryClientDirectory,
    InMemoryTransactions,
    StaticKeySets,
)
from tests.pki import NOW, CertificateAuthority, Issued

BASE = "https://oldplan.example"
URI = "https://newplan.example/udap"
SCOPES = "system/*.rs http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match"
NPI = "1234567893"
B2B = {
    "hl7-b2b": {
        "version": "1",
        "organization_id": f"http://hl7.org/fhir/sid/us-npi|{NPI}",
        "purpose_of_use": ["urn:oid:2.16.840.1.113883.5.8#TREAT"],
    }
}
ANCHOR = CertificateAuthority()
CLIENT = ANCHOR.issue(URI, npi=NPI)  # our community profile: the NPI as a SAN URI


def signed(issued: Issued, claims: dict[str, Any], alg: str = "ES384") -> str:
    key = ECKey.import_key(issued.key)
    return jwt.encode({"alg": alg, "x5c": issued.x5c}, claims, key, algorithms=[alg])


def statement(issued: Issued = CLIENT, **change: Any) -> str:
    now = int(NOW.timestamp())
    claims = {
        "iss": URI,
        "sub": URI,
        "aud": f"{BASE}/auth/register",
        "iat": now,
        "exp": now + 240,
        "jti": str(uuid.uuid4()),
        "client_name": "New Plan",
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": SCOPES,
        "extensions": B2B,
        **change,
    }
    return signed(issued, {k: v for k, v in claims.items() if v is not None})


def assertion(client_id: str, issued: Issued = CLIENT, **change: Any) -> str:
    now = int(NOW.timestamp())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{BASE}/auth/token",
        "iat": now,
        "exp": now + 240,
        "jti": str(uuid.uuid4()),
        "extensions": B2B,
        **change,
    }
    return signed(issued, {k: v for k, v in claims.items() if v is not None})


class World:
    def __init__(self, trust: TrustAnchors | None = None) -> None:
        self.audit = InMemoryAuditLog()
        self.consenting: set[str] = {"p1"}  # members whose consent permits the clients
        self.clients = InMemoryClientDirectory()
        ledger = InMemoryAssertionLedger()
        signing = ECKey.generate_key("P-256", private=True)
        signing = ECKey.import_key(signing.as_dict(private=True), {"kid": signing.thumbprint()})
        keys = AccessTokenKeys(signing=signing, accepted=(signing,))
        self.service = TokenService(
            clients=self.clients,
            assertions=ledger,
            key_sets=StaticKeySets(),
            transactions=InMemoryTransactions(self.audit, self.clients, ledger),
            keys=keys,
            policy=TokenPolicy(
                issuer=BASE,
                audience=f"{BASE}/fhir",
                token_url=f"{BASE}/auth/token",
                registration_url=f"{BASE}/auth/register",
                access_token_lifetime=timedelta(minutes=5),
                clock_skew=timedelta(seconds=60),
                udap_scopes=frozenset(SCOPES.split()),
            ),
            trust=trust or TrustAnchors((ANCHOR.certificate,), (ANCHOR.crl(),)),
            new_id=lambda: str(uuid.uuid4()),
            member_consent=lambda member, client, now: member in self.consenting,
        )
        self.verifier = TokenVerifier(keys, issuer=BASE, audience=f"{BASE}/fhir")

    def register(self, text: str) -> Any:
        return self.service.register_udap({"udap": "1", "software_statement": text}, now=NOW)

    def token(self, client_assertion: str) -> Any:
        return self.service.grant(
            {
                "grant_type": "client_credentials",
                "scope": "system/*.rs",
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": client_assertion,
            },
            now=NOW,
        )


def test_a_client_registers_itself_and_gets_tokens_with_its_certificate() -> None:
    world = World()
    client = world.register(statement())
    assert client.kind is ClientKind.UDAP and client.npi == NPI
    assert client.certificate_uri == URI and client.client_id.startswith("udap-")
    grant = world.token(assertion(client.client_id))
    principal = authenticate(
        grant.access_token, verifier=world.verifier, clients=world.clients, now=NOW
    )
    assert principal.client_id == client.client_id and principal.npi == NPI
    # Registering again (a renewed certificate) keeps the id and updates the client.
    renewed = ANCHOR.issue(URI, npi=NPI)
    again = world.register(statement(renewed, client_name="New Plan Inc"))
    assert again.client_id == client.client_id
    assert world.clients.get(client.client_id).name == "New Plan Inc"  # type: ignore[union-attr]
    outcomes = [(e.action, e.outcome) for e in world.audit.events]
    assert ("client.register", "success") in outcomes and ("client.register", "updated") in outcomes


@pytest.mark.parametrize(
    ("make", "error", "text"),
    [
        (lambda: statement(CertificateAuthority("Other").issue(URI)), "invalid_software_statement",
         "trust anchor"),
        (lambda: statement(ANCHOR.issue(URI, not_before=NOW - timedelta(days=9),
                                         not_after=NOW - timedelta(days=1))),
         "invalid_software_statement", "expired"),
        (lambda: statement(ANCHOR.issue("https://someone-else.example")),
         "invalid_software_statement", "subject alternative names"),
        (lambda: statement(aud="https://elsewhere.example/register"),
         "invalid_software_statement", "aud"),
        (lambda: statement(exp=int((NOW + timedelta(hours=1)).timestamp())),
         "invalid_software_statement", "five minutes"),
        (lambda: statement(extensions=None), "invalid_client_metadata", "organization_id"),
        (lambda: statement(grant_types=["authorization_code"]), "invalid_client_metadata",
         "grant_types"),
        (lambda: statement(scope="payerbridge/operator"), "invalid_client_metadata",
         "payerbridge/operator"),
    ],
)  # fmt: skip
def test_a_bad_software_statement_is_refused_and_audited(make: Any, error: str, text: str) -> None:
    world = World()
    with pytest.raises(OAuthError) as refused:
        world.register(make())
    assert refused.value.error == error and text in refused.value.description
    assert (world.audit.events[-1].action, world.audit.events[-1].outcome) == (
        "client.register",
        "failure",
    )
    assert world.clients.list() == []


def test_a_revoked_certificate_cannot_register() -> None:
    authority = CertificateAuthority()
    issued = authority.issue(URI)
    authority.revoke(issued)
    world = World(TrustAnchors((authority.certificate,), (authority.crl(),)))
    with pytest.raises(OAuthError, match="revoked"):
        world.register(statement(issued))


def test_a_software_statement_is_used_once() -> None:
    world = World()
    text = statement()
    world.register(text)
    with pytest.raises(OAuthError, match="jti"):
        world.register(text)


def test_token_assertions_must_carry_the_registered_certificate_and_organization() -> None:
    world = World()
    client = world.register(statement())
    other_uri = ANCHOR.issue("https://attacker.example/udap")
    with pytest.raises(OAuthError, match="does not name the URI"):
        world.token(assertion(client.client_id, other_uri))
    stranger = CertificateAuthority("Other").issue(URI)
    with pytest.raises(OAuthError, match="trust anchor"):
        world.token(assertion(client.client_id, stranger))
    another = "http://hl7.org/fhir/sid/us-npi|1245319599"
    other_org = {"hl7-b2b": {**B2B["hl7-b2b"], "organization_id": another}}
    with pytest.raises(OAuthError, match="another organization"):
        world.token(assertion(client.client_id, extensions=other_org))
    with pytest.raises(OAuthError, match="organization_id is required"):
        world.token(assertion(client.client_id, extensions=None))


def test_a_revoked_udap_client_is_out_and_cannot_register_again() -> None:
    world = World()
    client = world.register(statement())
    grant = world.token(assertion(client.client_id))
    with world.service.transactions.begin() as unit:
        world.clients.revoke(unit, client.client_id, at=NOW)
    with pytest.raises(Unauthenticated):
        authenticate(grant.access_token, verifier=world.verifier, clients=world.clients, now=NOW)
    with pytest.raises(OAuthError, match="revoked"):
        world.register(statement())
    assert dataclasses.replace(client).kind is ClientKind.UDAP


def our_identity(issued: Issued = CLIENT) -> ServerIdentity:
    return ServerIdentity(tuple(issued.chain), issued.key)


def test_our_software_statement_and_assertions_are_what_a_udap_server_accepts() -> None:
    """The outbound side, against our own inbound checks: the statement we send a UDAP
    partner registers us, and our assertions get tokens naming our organization."""
    world = World()
    identity = our_identity()
    assert identity.client_uri("https://not-named.example") == URI
    client = world.register(
        software_statement(
            identity,
            OurJwt(URI, f"{BASE}/auth/register", NOW, str(uuid.uuid4())),
            organization=B2bOrganization(NPI, "New Plan"),
            scope=SCOPES,
        )
    )
    assert client.npi == NPI and client.certificate_uri == URI
    grant = world.token(
        b2b_assertion(
            identity,
            OurJwt(client.client_id, f"{BASE}/auth/token", NOW, str(uuid.uuid4())),
            B2bOrganization(NPI, "New Plan"),
        )
    )
    principal = authenticate(
        grant.access_token, verifier=world.verifier, clients=world.clients, now=NOW
    )
    assert principal.client_id == client.client_id


def metadata(issued: Issued, **change: Any) -> str:
    now = int(NOW.timestamp())
    claims = {
        "iss": URI,
        "sub": URI,
        "iat": now,
        "exp": now + 3600,
        "jti": str(uuid.uuid4()),
        "token_endpoint": f"{BASE}/auth/token",
        "registration_endpoint": f"{BASE}/auth/register",
        **change,
    }
    return signed(issued, claims)


def test_a_partners_signed_metadata_must_chain_to_our_anchors_and_name_its_base() -> None:
    trust = TrustAnchors((ANCHOR.certificate,), (ANCHOR.crl(),))
    skew = timedelta(seconds=60)
    claims = read_signed_metadata(
        signed_metadata(
            our_identity(),
            issuer=URI,
            endpoints={"token_endpoint": f"{BASE}/auth/token"},
            now=NOW,
            token_id="m1",
        ),
        trust,
        fhir_base=URI,
        now=NOW,
        skew=skew,
    )
    assert claims["token_endpoint"] == f"{BASE}/auth/token"
    for token, base, text in (
        (metadata(CertificateAuthority("Other").issue(URI)), URI, "trust anchor"),
        (metadata(CLIENT), "https://asked.example/fhir", "FHIR base URL"),
        (metadata(ANCHOR.issue("https://other.example"), iss="https://other.example/fhir",
                  sub="https://other.example/fhir"), "https://other.example/fhir",
         "does not name"),
        (metadata(CLIENT, exp=int((NOW - timedelta(hours=1)).timestamp())), URI, "expired"),
    ):  # fmt: skip
        with pytest.raises(OAuthError, match=text):
            read_signed_metadata(token, trust, fhir_base=base, now=NOW, skew=skew)
