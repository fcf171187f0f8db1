"""The partner client's side of SMART Backend Services, over a scripted partner: tokens
got with our signed assertion, cached, renewed after a 401; no member data or token sent
outside the partner's registered FHIR base."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey, KeySet

from payerbridge.errors import PartnerAuthRejected, PartnerRejected, PartnerUnavailable
from payerbridge.exchange.ports import RecordRead
from payerbridge.partners.answers import Outbound
from payerbridge.partners.auth import OurUdapClient
from payerbridge.partners.client import HttpxPartnerClient
from payerbridge.routing.model import Organization, Partner, PartnerAuth
from payerbridge.security.assertions import CERTIFICATE_HEADERS
from payerbridge.security.model import ServerIdentity
from payerbridge.types import PartnerId
from tests.pki import CertificateAuthority
from tests.servers import new_signing_key, public_jwk

KEY = new_signing_key()
BASE = "https://old.example/fhir"
PARTNER = Partner(PartnerId("old"), "Old", "1245319599", BASE, client_id="us-at-old")
DISCOVERED_TOKEN = "https://old.example/auth/token"  # on the base's origin


class ScriptedPartner:
    """A partner with a SMART configuration, a token endpoint and $everything."""

    def __init__(
        self, *, refuse_first_token: bool = False, token_endpoint: str = DISCOVERED_TOKEN
    ) -> None:
        self.calls: list[tuple[str, str]] = []
        self.assertions: list[dict[str, Any]] = []
        self.issued = 0
        self.refuse_first_token = refuse_first_token
        self.token_endpoint = token_endpoint

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.calls.append((request.method, url))
        if url == f"{BASE}/.well-known/smart-configuration":
            return httpx.Response(200, json={"token_endpoint": self.token_endpoint})
        if url in (DISCOVERED_TOKEN, "https://auth.old.example/token"):
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            claims = jwt.decode(
                form["client_assertion"], KeySet([KEY]), algorithms=["ES384"]
            ).claims
            self.assertions.append({**form, "claims": claims})
            self.issued += 1
            return httpx.Response(
                200, json={"access_token": f"token-{self.issued}", "expires_in": 300}
            )
        authorization = request.headers.get("authorization")
        if self.refuse_first_token and authorization == "Bearer token-1":
            return httpx.Response(401)
        if url.endswith("/$everything"):
            return httpx.Response(200, json={"resourceType": "Bundle", "entry": []})
        return httpx.Response(404)


def client_for(partner: ScriptedPartner) -> HttpxPartnerClient:
    return HttpxPartnerClient(
        outbound=Outbound(timeout_seconds=5, transport=httpx.MockTransport(partner)),
        user_agent="test",
        key=KEY,
    )


def test_a_token_is_got_with_our_assertion_and_reused() -> None:
    partner = ScriptedPartner()
    client = client_for(partner)
    client.everything(PARTNER, RecordRead("Patient/1", idempotency_key="k1"))
    client.everything(PARTNER, RecordRead("Patient/2", idempotency_key="k2"))
    assert partner.issued == 1
    sent = partner.assertions[0]
    assert sent["grant_type"] == "client_credentials"
    assert sent["claims"]["iss"] == sent["claims"]["sub"] == "us-at-old"
    assert sent["claims"]["aud"] == DISCOVERED_TOKEN
    assert sent["claims"]["exp"] - sent["claims"]["iat"] <= 300
    assert "member-match" in sent["scope"]
    assert public_jwk(KEY)["kid"] == KEY.kid


@pytest.mark.parametrize(
    "elsewhere",
    [
        "https://auth.old.example/token",  # another host
        "https://old.example:8443/token",  # another port
        "http://old.example/token",  # another scheme
        "https://old.example.attacker.example/token",
    ],
)
def test_a_discovered_token_endpoint_on_another_origin_gets_no_assertion(elsewhere: str) -> None:
    partner = ScriptedPartner(token_endpoint=elsewhere)
    with pytest.raises(PartnerRejected, match="another origin") as refused:
        client_for(partner).everything(PARTNER, RecordRead("Patient/1", idempotency_key="k1"))
    assert "token_url" in refused.value.text
    assert partner.assertions == [] and all(method == "GET" for method, _ in partner.calls)


def test_an_operator_set_token_url_on_another_origin_is_approved() -> None:
    partner = ScriptedPartner(token_endpoint="https://attacker.example/token")
    approved = replace(PARTNER, token_url="https://auth.old.example/token")
    client_for(partner).everything(approved, RecordRead("Patient/1", idempotency_key="k1"))
    assert partner.assertions[0]["claims"]["aud"] == "https://auth.old.example/token"
    assert ("GET", f"{BASE}/.well-known/smart-configuration") not in partner.calls


def test_a_refused_token_is_dropped_and_renewed_for_the_one_retry() -> None:
    partner = ScriptedPartner(refuse_first_token=True)
    client = client_for(partner)
    with pytest.raises(PartnerAuthRejected):
        client.everything(PARTNER, RecordRead("Patient/1", idempotency_key="k1"))
    client.refresh_credentials(PARTNER)
    client.everything(PARTNER, RecordRead("Patient/1", idempotency_key="k1"))
    assert partner.issued == 2
    assert len({a["claims"]["jti"] for a in partner.assertions}) == 2


@pytest.mark.parametrize(
    "member_ref",
    [
        "https://attacker.example/fhir/Patient/1",
        "https://old.example/other/Patient/1",
        "Patient/../../admin",
        "Observation/1",
    ],
)
def test_a_member_reference_off_the_registered_base_is_refused(member_ref: str) -> None:
    partner = ScriptedPartner()
    with pytest.raises(PartnerRejected, match="registered FHIR base"):
        client_for(partner).everything(PARTNER, RecordRead(member_ref, idempotency_key="k"))
    assert partner.calls == []  # neither a token request nor the data request left


def test_an_absolute_reference_on_the_base_is_followed() -> None:
    partner = ScriptedPartner()
    client_for(partner).everything(PARTNER, RecordRead(f"{BASE}/Patient/7", idempotency_key="k"))
    assert ("GET", f"{BASE}/Patient/7/$everything") in partner.calls


def test_a_partner_without_our_client_id_is_called_without_a_token() -> None:
    partner = ScriptedPartner()
    open_partner = Partner(PartnerId("open"), "Open", "1245319599", BASE)
    client_for(partner).everything(open_partner, RecordRead("Patient/1", idempotency_key="k"))
    assert partner.issued == 0


def test_a_partner_repointed_by_an_operator_never_gets_the_old_token() -> None:
    partner = ScriptedPartner()
    client = client_for(partner)
    client.everything(PARTNER, RecordRead("Patient/1", idempotency_key="k1"))
    moved = Partner(PartnerId("old"), "Old", "1245319599", "https://moved.example/fhir",
                    client_id="us-at-old")  # fmt: skip
    # The new host is asked for its own token endpoint first (here it has none), and no
    # data request, least of all with the old token, goes there.
    with pytest.raises(PartnerUnavailable):
        client.everything(moved, RecordRead("Patient/1", idempotency_key="k2"))
    assert partner.calls[-1] == (
        "GET",
        "https://moved.example/fhir/.well-known/smart-configuration",
    )
    assert not any(url.startswith("https://moved.example/fhir/Patient") for _, url in partner.calls)


def test_a_udap_partner_gets_our_certificate_assertion_naming_our_organization() -> None:
    authority = CertificateAuthority()
    issued = authority.issue("https://new.example/fhir")
    udap = OurUdapClient(
        ServerIdentity(tuple(issued.chain), issued.key),
        "https://new.example/fhir",
        Organization("New Plan", "1234567893"),
    )
    seen: list[dict[str, str]] = []

    def partner(request: httpx.Request) -> httpx.Response:
        if str(request.url) == "https://auth.old.example/token":
            seen.append({k: v[0] for k, v in parse_qs(request.content.decode()).items()})
            return httpx.Response(200, json={"access_token": "udap-token", "expires_in": 300})
        assert request.headers["authorization"] == "Bearer udap-token"
        return httpx.Response(200, json={"resourceType": "Bundle", "entry": []})

    client = HttpxPartnerClient(
        outbound=Outbound(timeout_seconds=5, transport=httpx.MockTransport(partner)),
        user_agent="test",
        key=KEY,
        udap=udap,
    )
    registered = replace(PARTNER, auth=PartnerAuth.UDAP, token_url="https://auth.old.example/token")
    client.everything(registered, RecordRead("Patient/1", idempotency_key="k"))
    (form,) = seen
    assert form["udap"] == "1" and form["grant_type"] == "client_credentials"
    token = jws.extract_compact(form["client_assertion"].encode(), registry=CERTIFICATE_HEADERS)
    assert token.headers()["x5c"] == issued.x5c and token.headers()["alg"] == "ES384"
    claims = jwt.decode(
        form["client_assertion"],
        ECKey.import_key(issued.key.public_key()),
        registry=CERTIFICATE_HEADERS,
    ).claims
    assert claims["iss"] == "us-at-old" and claims["aud"] == "https://auth.old.example/token"
    b2b = claims["extensions"]["hl7-b2b"]
    assert b2b["organization_id"] == "http://hl7.org/fhir/sid/us-npi|1234567893"


def test_a_udap_partner_without_our_certificate_is_refused_before_any_call() -> None:
    calls: list[str] = []

    def partner(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(500)

    client = HttpxPartnerClient(
        outbound=Outbound(timeout_seconds=5, transport=httpx.MockTransport(partner)),
        user_agent="test",
        key=KEY,
    )
    registered = replace(PARTNER, auth=PartnerAuth.UDAP, token_url="https://auth.old.example/token")
    with pytest.raises(PartnerAuthRejected, match="no UDAP certificate"):
        client.everything(registered, RecordRead("Patient/1", idempotency_key="k"))
    assert calls == []
