"""Organizations proven, not claimed (issue 48, ADR 0026), through HTTP and the CLI with
real certificates: a UDAP client whose certificate does not carry the NPI it claims gets
no token and cannot read a member whose consent names that NPI; a certificate of another
organization is refused; registering again never changes the NPI; an operator's approval
(HTTP or CLI) binds the pairing, recorded and audited. One server for the module."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from payerbridge.security.assertions import CLIENT_ASSERTION_TYPE
from tests.builders import a_member_reaching_sensitive_shared_data, member_match_parameters
from tests.pki import NPI_SYSTEM, CertificateAuthority, Issued
from tests.servers import ALL_SCOPES, REQUESTER_SCOPES, ServerProcess

OLD_NPI = "1245319599"
VICTIM_NPI = "1234567893"  # the organization the member's consent names
ATTACKER_NPI = "1200000101"
COMMUNITY = CertificateAuthority("Payer Community")
FHIR = {"Content-Type": "application/fhir+json"}
EVERYTHING = "/fhir/Patient/p1/$everything"


@pytest.fixture(scope="module")
def payer(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    """The old payer trusting the community, holding member p1, whose consent (presented
    with $member-match by the victim's SMART client) names VICTIM_NPI."""
    directory = Path(tmp_path_factory.mktemp("organizations"))
    anchor = directory / "community.pem"
    anchor.write_bytes(COMMUNITY.pem())
    data = directory / "old.ndjson"
    data.write_bytes(
        b"\n".join(orjson.dumps(r) for r in a_member_reaching_sensitive_shared_data().values())
    )
    payer = module_server(
        "old",
        env={
            "PAYERBRIDGE_ORG_NAME": "Old Plan",
            "PAYERBRIDGE_ORG_NPI": OLD_NPI,
            "PAYERBRIDGE_UDAP_TRUST_ANCHORS": orjson.dumps([str(anchor)]).decode(),
        },
        import_files=[data],
    )
    victim = payer.register_client("victim", npi=VICTIM_NPI, scope=REQUESTER_SCOPES)
    with payer.client_with(victim) as client:
        matched = client.post(
            "/fhir/Patient/$member-match",
            json=member_match_parameters(our_npi=VICTIM_NPI, partner_npi=OLD_NPI),
            headers=FHIR,
        )
        assert matched.status_code == 200, matched.text
        assert client.get(EVERYTHING).status_code == 200  # the consent works for it
    return payer.authorize("operator", scope=ALL_SCOPES)


def _signed(issued: Issued, claims: dict[str, Any]) -> str:
    key = ECKey.import_key(issued.key)
    return jwt.encode({"alg": "ES384", "x5c": issued.x5c}, claims, key, algorithms=["ES384"])


def _claims(payer: ServerProcess, iss: str, path: str, npi: str, **more: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": iss,
        "sub": iss,
        "aud": f"{payer.base_url}{path}",
        "iat": now,
        "exp": now + 240,
        "jti": str(uuid.uuid4()),
        "extensions": {
            "hl7-b2b": {
                "version": "1",
                "organization_id": f"{NPI_SYSTEM}|{npi}",
                "purpose_of_use": ["urn:oid:2.16.840.1.113883.5.8#COVERAGE"],
            }
        },
        **more,
    }


def register(payer: ServerProcess, issued: Issued, uri: str, npi: str) -> httpx.Response:
    statement = _signed(
        issued,
        _claims(
            payer,
            uri,
            "/auth/register",
            npi,
            client_name="Some Plan",
            grant_types=["client_credentials"],
            token_endpoint_auth_method="private_key_jwt",
            scope="system/*.rs",
        ),
    )
    with payer.anonymous() as anonymous:
        return anonymous.post("/auth/register", json={"software_statement": statement, "udap": "1"})


def ask_token(payer: ServerProcess, issued: Issued, client_id: str, npi: str) -> httpx.Response:
    with payer.anonymous() as anonymous:
        return anonymous.post(
            "/auth/token",
            data={
                "grant_type": "client_credentials",
                "scope": "system/*.rs",
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": _signed(issued, _claims(payer, client_id, "/auth/token", npi)),
                "udap": "1",
            },
        )


def read_everything(payer: ServerProcess, token: httpx.Response) -> int:
    access = token.json().get("access_token") if token.status_code == 200 else None
    with payer.client_with(access) as client:
        return client.get(EVERYTHING).status_code


def test_a_certificate_without_the_npi_it_claims_cannot_read_that_npis_member(
    payer: ServerProcess,
) -> None:
    uri = "https://attacker.example/udap"
    bare = COMMUNITY.issue(uri)  # a community certificate, but not the victim's
    registered = register(payer, bare, uri, VICTIM_NPI)
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    token = ask_token(payer, bare, client_id, VICTIM_NPI)
    assert read_everything(payer, token) == 401  # was 200: the member's record
    assert token.status_code == 400, token.text
    assert token.json()["error"] == "unauthorized_client"
    assert "awaits an operator's approval" in token.json()["error_description"]
    assert registered.json()["organization_status"] == "awaiting_approval"
    issued = payer.cli("token", "issue", "--client", client_id, "--scope", "system/*.rs")
    assert issued.returncode != 0 and "awaits an operator" in issued.stderr + issued.stdout
    # The control: a certificate that carries the NPI reads the member at once.
    proven_uri = "https://victim.example/udap"
    proven = COMMUNITY.issue(proven_uri, npi=VICTIM_NPI)
    bound = register(payer, proven, proven_uri, VICTIM_NPI)
    assert bound.status_code == 201 and bound.json()["organization_status"] == "bound"
    token = ask_token(payer, proven, bound.json()["client_id"], VICTIM_NPI)
    assert token.status_code == 200, token.text
    assert read_everything(payer, token) == 200


def test_a_certificate_of_another_organization_cannot_claim_the_victims_npi(
    payer: ServerProcess,
) -> None:
    uri = "https://attacker2.example/udap"
    theirs = COMMUNITY.issue(uri, npi=ATTACKER_NPI)
    refused = register(payer, theirs, uri, VICTIM_NPI)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_software_statement"
    assert "does not carry" in refused.json()["error_description"]
    # Registered honestly for its own NPI, it reads nothing of the victim's member.
    own = register(payer, theirs, uri, ATTACKER_NPI)
    assert own.status_code == 201 and own.json()["organization_status"] == "bound"
    client_id = own.json()["client_id"]
    claiming = ask_token(payer, theirs, client_id, VICTIM_NPI)
    assert claiming.status_code == 400 and claiming.json()["error"] == "invalid_grant"
    token = ask_token(payer, theirs, client_id, ATTACKER_NPI)
    assert token.status_code == 200, token.text
    assert read_everything(payer, token) in (403, 404)


def test_registering_again_never_changes_the_npi(payer: ServerProcess) -> None:
    uri = "https://switcher.example/udap"
    first = COMMUNITY.issue(uri, npi=ATTACKER_NPI)
    registered = register(payer, first, uri, ATTACKER_NPI)
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    # Even with a renewed certificate that carries both NPIs, the client stays its own.
    both = COMMUNITY.issue(uri, npi=ATTACKER_NPI, more_uris=[f"{NPI_SYSTEM}|{VICTIM_NPI}"])
    for certificate in (COMMUNITY.issue(uri), both):
        moved = register(payer, certificate, uri, VICTIM_NPI)
        assert moved.status_code == 400, moved.text
        assert moved.json()["error"] == "invalid_client_metadata"
        assert "cannot change the organization" in moved.json()["error_description"]
    with payer.client() as operator:
        shown = operator.get(f"/clients/{client_id}").json()
    assert (shown["npi"], shown["npi_evidence"]) == (ATTACKER_NPI, "certificate")
    assert ask_token(payer, both, client_id, VICTIM_NPI).json()["error"] == "invalid_grant"


def test_an_operators_approval_binds_the_pairing_recorded_and_audited(
    payer: ServerProcess,
) -> None:
    uri = "https://unlabelled.example/udap"
    bare = COMMUNITY.issue(uri)
    client_id = register(payer, bare, uri, VICTIM_NPI).json()["client_id"]
    with payer.client() as operator:
        listed = {c["id"]: c for c in operator.get("/clients").json()}
        assert listed[client_id]["npi_evidence"] == "pending"
        wrong = operator.post(f"/clients/{client_id}/$approve-organization", json={"npi": OLD_NPI})
        assert wrong.status_code == 400, wrong.text
        assert wrong.json()["issue"][0]["expression"] == ["npi"]
        approved = operator.post(
            f"/clients/{client_id}/$approve-organization", json={"npi": VICTIM_NPI}
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["npi_evidence"] == "operator"
        assert approved.json()["npi_vouched_by"] == "operator"
        again = operator.post(
            f"/clients/{client_id}/$approve-organization", json={"npi": VICTIM_NPI}
        )
        assert again.status_code == 409, again.text
    with payer.anonymous() as anonymous:
        assert (
            anonymous.post(
                f"/clients/{client_id}/$approve-organization", json={"npi": VICTIM_NPI}
            ).status_code
            == 401
        )
    token = ask_token(payer, bare, client_id, VICTIM_NPI)
    assert token.status_code == 200, token.text
    assert read_everything(payer, token) == 200
    # The CLI approves the same way.
    cli_uri = "https://unlabelled-cli.example/udap"
    cli_bare = COMMUNITY.issue(cli_uri)
    cli_client = register(payer, cli_bare, cli_uri, ATTACKER_NPI).json()["client_id"]
    approved_cli = payer.cli("clients", "approve", "--id", cli_client, "--npi", ATTACKER_NPI)
    assert approved_cli.returncode == 0, approved_cli.stderr
    assert ask_token(payer, cli_bare, cli_client, ATTACKER_NPI).status_code == 200
    with payer.client() as operator:
        shown = operator.get(f"/clients/{cli_client}").json()
    assert shown["npi_evidence"] == "operator"
    assert shown["npi_vouched_by"].startswith("cli:")  # the operating-system user
    with payer.platform() as platform:
        events = [
            (e.action, e.outcome, e.actor, orjson.loads(e.detail or "{}").get("npi"))
            for e in platform.audit_chain.events()
            if e.entity_id in (client_id, cli_client)
        ]
    assert ("client.approve", "success", "operator", VICTIM_NPI) in events
    assert any(e[0] == "client.approve" and e[3] == ATTACKER_NPI for e in events)
    assert ("client.register", "success", client_id, VICTIM_NPI) in events


def test_a_smart_client_registered_by_api_records_the_operator_who_vouched(
    payer: ServerProcess,
) -> None:
    key = ECKey.generate_key("P-384", private=True)
    body = {
        "id": "api-registered",
        "name": "Api Plan",
        "npi": ATTACKER_NPI,
        "scope": "system/*.rs",
        "jwks": {"keys": [{**key.as_dict(private=False), "kid": "k1", "alg": "ES384"}]},
    }
    with payer.client() as operator:
        created = operator.post("/clients", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["npi_evidence"] == "operator"
        assert created.json()["npi_vouched_by"] == "operator"
    with payer.client_with(payer.register_client("reader", scope="system/*.rs")) as reader:
        assert reader.post("/clients", json={**body, "id": "sneaky"}).status_code == 403
