"""Security through the public interface, against a real server and database: tokens from
the real token endpoint with real RS384 and ES384 keys, every route authenticated,
tenancy between clients, and the partner-hijack case of the issue."""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc import jws, jwt
from joserfc.jwk import ECKey, RSAKey
from starlette.routing import Mount, Route

from payerbridge.security.assertions import CERTIFICATE_HEADERS, CLIENT_ASSERTION_TYPE
from payerbridge.security.certificates import certificate_chain
from payerbridge.security.model import EXCHANGES_SCOPE, MEMBER_MATCH_SCOPE, OPERATOR_SCOPE
from tests import pki
from tests.builders import an_exchange_request
from tests.pki import CertificateAuthority
from tests.servers import (
    ALL_SCOPES,
    REQUESTER_SCOPES,
    ServerProcess,
    new_key,
    new_signing_key,
    public_jwk,
    run_cli,
)

EC_KEY = new_signing_key()
RSA_KEY = RSAKey.import_key(
    (key := RSAKey.generate_key(2048, private=True)).as_dict(private=True),
    {"kid": key.thumbprint()},
)


@pytest.fixture(scope="module")
def payer(module_server: Callable[..., ServerProcess]) -> ServerProcess:
    """One server the module's tests share: each registers clients and partners of its
    own (tests that need settings of their own start theirs)."""
    return module_server("payer")


def own(prefix: str) -> str:
    """A client id no other test of the shared server uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def assertion(
    payer: ServerProcess, client_id: str, key: Any = EC_KEY, alg: str = "ES384", **claims: Any
) -> str:
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{payer.base_url}/auth/token",
        "iat": now,
        "exp": now + 240,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    return jwt.encode({"alg": alg, "kid": key.kid}, body, key, algorithms=[alg])


def ask_token(payer: ServerProcess, client_assertion: str, scope: str) -> httpx.Response:
    return httpx.post(
        f"{payer.base_url}/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": client_assertion,
        },
        timeout=10,
    )


def register_with_cli(payer: ServerProcess, tmp_path: Path, client_id: str, scope: str) -> None:
    jwks = tmp_path / f"{client_id}.jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [public_jwk(EC_KEY), public_jwk(RSA_KEY)]}))
    added = payer.cli(
        "clients", "add", "--id", client_id, "--name", "Plan", "--npi", "1234567893",
        "--scope", scope, "--jwks", str(jwks),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr


def _audit_outcomes(payer: ServerProcess, client_id: str) -> list[str]:
    with payer.platform() as platform:
        events = platform.audit.for_entity("Client", client_id)
    return [e["outcome"] for e in events if e["action"] == "auth.token"]


def test_discovery_documents_are_public_and_name_the_token_endpoint(payer: ServerProcess) -> None:
    with payer.anonymous() as anonymous:
        for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
            config = anonymous.get(path).json()
            assert config["token_endpoint"] == f"{payer.base_url}/auth/token"
            assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
            assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {
                "RS384",
                "ES384",
            }
        keys = anonymous.get("/auth/jwks").json()["keys"]
        assert keys and all("d" not in key for key in keys)
        metadata = anonymous.get("/fhir/metadata").json()
        security = metadata["rest"][0]["security"]
        assert security["extension"][0]["extension"][0]["valueUri"].endswith("/auth/token")
        assert anonymous.get("/openapi.json").status_code == 401
        assert anonymous.get("/docs").status_code == 404


@pytest.mark.parametrize(("key", "alg"), [(EC_KEY, "ES384"), (RSA_KEY, "RS384")])
def test_a_signed_assertion_gets_a_token_that_opens_the_api(
    payer: ServerProcess, tmp_path: Path, key: Any, alg: str
) -> None:
    requester = own("requester")
    register_with_cli(payer, tmp_path, requester, REQUESTER_SCOPES)
    response = ask_token(payer, assertion(payer, requester, key, alg), "system/*.rs")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    grant = response.json()
    assert grant["token_type"] == "bearer" and grant["expires_in"] == 300
    with payer.client_with(grant["access_token"]) as client:
        found = client.get("/fhir/Patient", params={"identifier": "nobody"})
        assert found.status_code == 200, found.text
        # The token grants reads only: $member-match needs its own scope, exchanges theirs.
        refused = client.post(
            "/fhir/Patient/$member-match",
            content=b"{}",
            headers={"Content-Type": "application/fhir+json"},
        )
        assert refused.status_code == 403 and MEMBER_MATCH_SCOPE in refused.text
        assert client.get("/exchanges").status_code == 403
    assert _audit_outcomes(payer, requester) == ["success"]


@pytest.mark.parametrize(
    ("change", "status", "error", "text"),
    [
        ({"key": new_signing_key()}, 401, "invalid_client", "signature"),
        ({"exp": 1}, 401, "invalid_client", "expired"),
        ({"iat": 4_000_000_000}, 401, "invalid_client", "future"),
        ({"aud": "https://elsewhere.example/token"}, 401, "invalid_client", "aud"),
        ({"client": "stranger"}, 401, "invalid_client", "not registered"),
        ({"scope": OPERATOR_SCOPE}, 400, "invalid_scope", OPERATOR_SCOPE),
    ],
)
def test_a_bad_assertion_is_refused_in_oauths_form_and_audited(
    payer: ServerProcess,
    tmp_path: Path,
    change: dict[str, Any],
    status: int,
    error: str,
    text: str,
) -> None:
    requester = own("requester")
    register_with_cli(payer, tmp_path, requester, REQUESTER_SCOPES)
    key = change.pop("key", EC_KEY)
    client_id = own(change.pop("client")) if "client" in change else requester
    scope = change.pop("scope", "system/*.rs")
    if "exp" in change:
        change["iat"] = 0
    response = ask_token(payer, assertion(payer, client_id, key, **change), scope)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and text in body["error_description"]
    assert _audit_outcomes(payer, client_id[:200]) == ["failure"]


def test_an_assertion_cannot_be_replayed_and_a_revoked_client_is_out_at_once(
    payer: ServerProcess, tmp_path: Path
) -> None:
    requester = own("requester")
    register_with_cli(payer, tmp_path, requester, REQUESTER_SCOPES)
    once = assertion(payer, requester)
    first = ask_token(payer, once, "system/*.rs")
    assert first.status_code == 200
    again = ask_token(payer, once, "system/*.rs")
    assert again.status_code == 401 and "replay" in again.json()["error_description"]
    token = first.json()["access_token"]
    with payer.client_with(token) as client:
        assert client.get("/fhir/Patient", params={"identifier": "x"}).status_code == 200
        revoked = payer.cli("clients", "revoke", "--id", requester)
        assert revoked.returncode == 0, revoked.stderr
        after = client.get("/fhir/Patient", params={"identifier": "x"})
        assert after.status_code == 401 and after.json()["issue"][0]["code"] == "login"
    refused = ask_token(payer, assertion(payer, requester), "system/*.rs")
    assert refused.status_code == 401
    # Wide enough that no id wraps, however many clients the shared server lists.
    listed = run_cli(
        ["clients", "list", "--data-dir", str(payer.data_dir)], env={**payer.env, "COLUMNS": "1000"}
    )
    assert requester in listed.stdout


def test_the_token_endpoint_refuses_what_is_not_a_token_request(payer: ServerProcess) -> None:
    url = f"{payer.base_url}/auth/token"
    as_json = httpx.post(url, json={"grant_type": "client_credentials"}, timeout=10)
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    twice = httpx.post(
        url,
        content=b"grant_type=client_credentials&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert twice.status_code == 400 and "more than once" in twice.json()["error_description"]
    wrong_grant = httpx.post(url, data={"grant_type": "password"}, timeout=10)
    assert wrong_grant.json()["error"] == "unsupported_grant_type"


def _walkable(path: str) -> str:
    return path.replace("{", "").replace("}", "").replace(":path", "")


def _routes(routes: list[Any]) -> list[Route]:
    """Every endpoint of a route table, through included routers (the console, a mounted
    application of its own, is walked by its own test below)."""
    found: list[Route] = []
    for route in routes:
        if isinstance(route, Route):
            found.append(route)
        elif isinstance(route, Mount):
            continue
        else:  # an included router (FastAPI wraps each in its own route)
            found.extend(_routes(route.original_router.routes))
    return found


def test_every_console_page_outside_the_sign_in_sends_an_anonymous_browser_to_it(
    payer: ServerProcess,
) -> None:
    """Walks the console's own route table: a page added later without a session check
    fails here. A page answers a browser (a redirect to sign in), not an API client."""
    from payerbridge.console.app import CONSOLE_PATH, PUBLIC_PAGES, build_console

    with payer.platform() as platform:
        console = build_console(platform)
    walked = 0
    with payer.anonymous() as anonymous:
        for route in _routes(console.routes):
            for method in sorted((route.methods or set()) - {"HEAD", "OPTIONS"}):
                path = CONSOLE_PATH + _walkable(route.path)
                response = anonymous.request(method, path, follow_redirects=False)
                if (method, route.path) in PUBLIC_PAGES:
                    assert response.status_code in (200, 403), (method, path)  # a form's token
                    continue
                walked += 1
                assert response.status_code == 303, (method, path, response.text[:200])
                assert response.headers["location"].startswith("/console/login?why=signin")
    assert walked >= 15  # the table was really walked


def test_every_route_outside_the_public_list_refuses_an_anonymous_caller(
    payer: ServerProcess,
) -> None:
    """Walks the application's own route table: a route added later without
    authentication fails here."""
    from payerbridge.api.app import create_app
    from payerbridge.api.deps import PUBLIC_ROUTES

    with payer.platform() as platform:
        app = create_app(platform)  # its lifespan (the workers) is not started
    walked = 0
    with payer.anonymous() as anonymous:
        for route in _routes(app.routes):
            for method in sorted((route.methods or set()) - {"HEAD", "OPTIONS"}):
                response = anonymous.request(method, _walkable(route.path))
                if (method, route.path) in PUBLIC_ROUTES:
                    assert response.status_code != 401, (method, route.path)
                    continue
                walked += 1
                assert response.status_code == 401, (method, route.path, response.text)
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json()["issue"][0]["code"] == "login"
    assert walked >= 25  # the table was really walked


def test_a_client_sees_and_touches_only_its_own_exchanges_and_consents(
    payer: ServerProcess,
) -> None:
    ops = payer.register_client(own("ops"), scope=OPERATOR_SCOPE)
    old_plan = "old-plan-tenancy"  # this test's own partner on the shared server
    with payer.client_with(ops) as operator:
        created = operator.post(
            "/partners",
            json={"id": old_plan, "name": "Old", "npi": "1245319599",
                  "base_url": "http://127.0.0.1:9/fhir"},
        )  # fmt: skip
        assert created.status_code == 201, created.text
    a_client_id = own("plan-a")
    a = payer.client_with(payer.register_client(a_client_id, scope=EXCHANGES_SCOPE))
    b = payer.client_with(payer.register_client(own("plan-b"), scope=EXCHANGES_SCOPE))
    with a, b:
        submitted = a.post("/exchanges", json=an_exchange_request(old_plan), headers=new_key())
        assert submitted.status_code == 202, submitted.text
        exchange = submitted.json()
        consent_id = exchange["consent_id"]
        assert a.get(f"/exchanges/{exchange['id']}").status_code == 200
        assert b.get(f"/exchanges/{exchange['id']}").status_code == 404
        assert b.get("/exchanges").json()["total"] == 0
        assert a.get("/exchanges").json()["total"] == 1
        # Searched by our member id and the submitting request: A's own, never B's.
        request_id = submitted.headers["X-Request-ID"]
        for params in ({"member": "N1"}, {"request_id": request_id}, {"partner": old_plan}):
            assert [e["id"] for e in a.get("/exchanges", params=params).json()["items"]] == [
                exchange["id"]
            ]
            assert b.get("/exchanges", params=params).json()["items"] == []
        refused_search = b.get("/exchanges", params={"client": a_client_id})
        assert refused_search.status_code == 403, refused_search.text
        assert refused_search.json()["resourceType"] == "OperationOutcome"
        assert b.get(f"/consents/{consent_id}").status_code == 404
        assert b.post(f"/consents/{consent_id}/$revoke").status_code == 404
        assert b.post(f"/exchanges/{exchange['id']}/$replay").status_code == 403
        listed = b.get("/consents", params={"member_id": "N1"}).json()
        assert listed == []
        # B cannot run an exchange under A's opt-in.
        borrowed = {**an_exchange_request(old_plan), "consent": None, "consent_id": consent_id}
        refused = b.post("/exchanges", json=borrowed, headers=new_key())
        assert refused.status_code == 422, refused.text
        assert "no member opt-in is recorded" in refused.text
        assert a.get(f"/consents/{consent_id}").status_code == 200
    with payer.client_with(ops) as operator:  # operators see everyone's
        # Of the exchanges with this test's partner (the server is shared): A's alone.
        everyone = operator.get("/exchanges", params={"_count": 500}).json()
        assert everyone["total"] <= 500  # all of them on this page
        assert [e["id"] for e in everyone["items"] if e["old_payer"] == old_plan] == [
            exchange["id"]
        ]
        found = operator.get("/exchanges", params={"member": "N1", "client": a_client_id})
        assert [e["id"] for e in found.json()["items"]] == [exchange["id"]]


def test_nobody_but_an_operator_can_repoint_a_partner(payer: ServerProcess) -> None:
    ops = payer.register_client(own("ops"), scope=OPERATOR_SCOPE)
    partner = {
        "id": "old-plan-hijack",  # this test's own partner on the shared server
        "name": "Old",
        "npi": "1245319599",
        "base_url": "https://old.example/fhir",
        "client_id": "us-at-old",
    }
    with payer.client_with(ops) as operator:
        assert operator.post("/partners", json=partner).status_code == 201
    hijack = {**partner, "base_url": "https://attacker.example/fhir"}
    with payer.anonymous() as anonymous:
        assert anonymous.post("/partners", json=hijack).status_code == 401
    submitter = payer.register_client(own("portal"), scope=EXCHANGES_SCOPE)
    with payer.client_with(submitter) as portal:
        assert portal.post("/partners", json=hijack).status_code == 403
    with payer.client_with(ops) as operator:
        assert operator.get(f"/partners/{partner['id']}").json()["base_url"] == partner["base_url"]
        # Re-pointing reads the new endpoint's discovery documents first: a host that
        # does not answer as a FHIR and SMART server is not where member data goes.
        dead = operator.post("/partners", json={**partner, "base_url": "https://127.0.0.1:9/fhir"})
        assert dead.status_code == 422 and "nothing was changed" in dead.text
        # The CLI is held to the same check.
        by_cli = payer.cli(
            "partners", "add", "--id", partner["id"], "--name", "Old", "--npi", "1245319599",
            "--base-url", "https://127.0.0.1:9/fhir", "--client-id", "us-at-old",
        )  # fmt: skip
        assert by_cli.returncode != 0 and "nothing was changed" in by_cli.stderr
        assert operator.get(f"/partners/{partner['id']}").json()["base_url"] == partner["base_url"]
        live = f"{payer.base_url}/fhir"  # this server answers both documents
        moved = operator.post("/partners", json={**partner, "base_url": live})
        assert moved.status_code == 200, moved.text
    with payer.platform() as platform:
        events = platform.audit.for_entity("Partner", partner["id"])
    registered = [e for e in events if e["action"] == "partner.register"]
    assert [e["outcome"] for e in registered] == ["created", "updated"]
    # Its one endpoint moved with its base URL (ADR 0060).
    assert registered[-1]["detail"]["changed"] == ["base_url", "endpoints"]
    discovered = registered[-1]["detail"]["discovered"]
    assert discovered["token_endpoint"] == f"{payer.base_url}/auth/token"
    # The new endpoint's capabilities are kept: the first it answered.
    (read,) = [e for e in events if e["action"] == "partner.capabilities"]
    assert read["detail"]["changes"] == ["first reading"]


def test_token_issue_prints_a_token_within_the_clients_scopes(
    payer: ServerProcess, tmp_path: Path
) -> None:
    portal = own("portal")
    register_with_cli(payer, tmp_path, portal, f"{EXCHANGES_SCOPE} {MEMBER_MATCH_SCOPE}")
    issued = payer.cli("token", "issue", "--client", portal, "--scope", EXCHANGES_SCOPE)
    assert issued.returncode == 0, issued.stderr
    with payer.client_with(issued.stdout.strip()) as client:
        assert client.get("/exchanges").status_code == 200
    wider = payer.cli("token", "issue", "--client", portal, "--scope", ALL_SCOPES)
    assert wider.returncode != 0 and OPERATOR_SCOPE in wider.stderr


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:9/hook", "https"),
        ("https://127.0.0.1:9/hook", "private"),
        ("https://10.0.0.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "private"),
        ("https://[::1]/hook", "private"),
    ],
)
def test_a_webhook_cannot_target_this_machine_or_the_private_network(
    server: Callable[..., ServerProcess], url: str, why: str
) -> None:
    # As in production: no network listed as an exception (ADR 0027).
    payer = server("payer", env={"PAYERBRIDGE_EGRESS_ALLOWED_NETWORKS": "[]"})
    portal = payer.register_client("portal", scope=EXCHANGES_SCOPE)
    with payer.client_with(portal) as client:
        refused = client.post("/webhooks", json={"url": url})
        assert refused.status_code == 422, refused.text
        issue = refused.json()["issue"][0]
        assert issue["expression"] == ["url"] and why in issue["details"]["text"]
        assert client.get("/webhooks").json()["count"] == 0


def _udap_server(
    server: Callable[..., ServerProcess], tmp_path: Path, authority: Any
) -> ServerProcess:
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(authority.pem())
    crl = tmp_path / "anchor.crl"
    crl.write_bytes(authority.crl().public_bytes(Encoding.DER))
    return server(
        "udap",
        env={
            "PAYERBRIDGE_UDAP_TRUST_ANCHORS": orjson.dumps([str(anchor)]).decode(),
            "PAYERBRIDGE_UDAP_REVOCATION_LISTS": orjson.dumps([str(crl)]).decode(),
        },
    )


def _signed_by(issued: Any, claims: dict[str, Any]) -> str:
    key = ECKey.import_key(issued.key)
    return jwt.encode({"alg": "ES384", "x5c": issued.x5c}, claims, key, algorithms=["ES384"])


def _udap_claims(payer: ServerProcess, iss: str, aud: str, **more: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": iss,
        "sub": iss,
        "aud": f"{payer.base_url}{aud}",
        "iat": now,
        "exp": now + 240,
        "jti": str(uuid.uuid4()),
        "extensions": {
            "hl7-b2b": {
                "version": "1",
                "organization_id": "http://hl7.org/fhir/sid/us-npi|1234567893",
                "purpose_of_use": ["urn:oid:2.16.840.1.113883.5.8#TREAT"],
            }
        },
        **more,
    }


def test_a_udap_client_registers_itself_under_a_trusted_anchor_and_gets_tokens(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    authority = CertificateAuthority()
    revoked = authority.issue("https://revoked.example/udap")
    authority.revoke(revoked)
    payer = _udap_server(server, tmp_path, authority)
    uri = "https://newplan.example/udap"
    issued = authority.issue(uri, npi="1234567893")  # the NPI it claims, as a SAN URI
    with payer.anonymous() as anonymous:
        metadata = anonymous.get("/.well-known/udap").json()
        assert metadata["registration_endpoint"] == f"{payer.base_url}/auth/register"
        assert "hl7-b2b" in metadata["udap_authorization_extensions_required"]
        assert anonymous.get("/fhir/.well-known/udap").json() == metadata

        def register(issued: Any, iss: str) -> httpx.Response:
            statement = _signed_by(
                issued,
                _udap_claims(
                    payer,
                    iss,
                    "/auth/register",
                    client_name="New Plan",
                    grant_types=["client_credentials"],
                    token_endpoint_auth_method="private_key_jwt",
                    scope="system/*.rs",
                ),
            )
            return anonymous.post(
                "/auth/register", json={"software_statement": statement, "udap": "1"}
            )

        registered = register(issued, uri)
        assert registered.status_code == 201, registered.text
        client_id = registered.json()["client_id"]
        for refused_issued, iss, text in (
            (CertificateAuthority("Other").issue(uri), uri, "trust anchor"),
            (revoked, "https://revoked.example/udap", "revoked"),
            (
                authority.issue(
                    uri,
                    not_before=pki.NOW - timedelta(days=9),
                    not_after=pki.NOW - timedelta(days=1),
                ),
                uri,
                "expired",
            ),
        ):
            refused = register(refused_issued, iss)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"] == "invalid_software_statement"
            assert text in refused.json()["error_description"]

        assertion = _signed_by(issued, _udap_claims(payer, client_id, "/auth/token"))
        response = ask_token(payer, assertion, "system/*.rs")
        assert response.status_code == 200, response.text
    with payer.client_with(response.json()["access_token"]) as client:
        assert client.get("/fhir/Patient", params={"identifier": "x"}).status_code == 200
    assert "udap" in payer.cli("clients", "list").stdout
    with payer.platform() as platform:
        stored = platform.clients.get(client_id)
    assert stored is not None and stored.certificate_uri == uri and stored.jwks is None


def test_a_client_over_its_rate_is_told_when_to_come_back(
    server: Callable[..., ServerProcess],
) -> None:
    payer = server(
        "limited",
        env={"PAYERBRIDGE_RATE_LIMIT_PER_SECOND": "0.2", "PAYERBRIDGE_RATE_LIMIT_BURST": "2"},
    )
    token = payer.register_client("portal", scope=f"{EXCHANGES_SCOPE} system/*.rs")
    with payer.client_with(token) as client:
        assert [client.get("/exchanges").status_code for _ in range(2)] == [200, 200]
        refused = client.get("/exchanges")
        assert refused.status_code == 429
        # One request every five seconds: the wait for the next is at most five, less by
        # what the requests before it took (a loaded machine took seconds).
        assert 1 <= int(refused.headers["retry-after"]) <= 5
        assert refused.json()["issue"][0]["code"] == "throttled"
        # Another operation, and another resource read through the same route template,
        # have their own budget.
        assert client.get("/fhir/Patient", params={"identifier": "x"}).status_code == 200
        assert client.get("/fhir/Patient/a").status_code in (403, 404)
        assert client.get("/fhir/Patient/b").status_code in (403, 404)
        assert client.get("/fhir/Patient/c").status_code == 429
    # The token endpoint has no client yet: it is limited by the caller's address.
    url = f"{payer.base_url}/auth/token"
    answers = [httpx.post(url, data={"grant_type": "x"}, timeout=10) for _ in range(3)]
    assert [a.status_code for a in answers] == [400, 400, 429]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 5


def test_a_token_asked_over_mutual_tls_is_bound_to_that_certificate(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    authority = CertificateAuthority()
    ca = tmp_path / "ca.pem"
    ca.write_bytes(authority.pem())
    cert, key = authority.issue_server().write(tmp_path, "server")
    payer = server(
        "mtls",
        env={
            "PAYERBRIDGE_TLS_CERTFILE": str(cert),
            "PAYERBRIDGE_TLS_KEYFILE": str(key),
            "PAYERBRIDGE_TLS_CLIENT_CA": str(ca),
        },
        tls_ca=ca,
    )
    register_with_cli(payer, tmp_path, "requester", REQUESTER_SCOPES)
    ours = authority.issue("https://newplan.example/client").write(tmp_path, "ours")
    theirs = authority.issue("https://other.example/client").write(tmp_path, "theirs")

    def connection(client_cert: tuple[Path, Path] | None) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(ca))
        if client_cert is not None:
            context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
        return httpx.Client(base_url=payer.base_url, verify=context, timeout=10)

    form = {
        "grant_type": "client_credentials",
        "scope": "system/*.rs",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
    }
    with connection(ours) as mine:
        issued = mine.post(
            "/auth/token", data={**form, "client_assertion": assertion(payer, "requester")}
        )
        assert issued.status_code == 200, issued.text
        bound = {"Authorization": f"Bearer {issued.json()['access_token']}"}
        assert mine.get("/fhir/Patient?identifier=x", headers=bound).status_code == 200
    for other in (theirs, None):
        with connection(other) as elsewhere:
            refused = elsewhere.get("/fhir/Patient?identifier=x", headers=bound)
            assert refused.status_code == 401
            assert "present the same client certificate" in refused.text
    with connection(None) as plain:  # asked without a certificate: not bound
        unbound = plain.post(
            "/auth/token", data={**form, "client_assertion": assertion(payer, "requester")}
        ).json()["access_token"]
    with connection(theirs) as elsewhere:
        headers = {"Authorization": f"Bearer {unbound}"}
        assert elsewhere.get("/fhir/Patient?identifier=x", headers=headers).status_code == 200


def test_the_udap_metadata_is_signed_with_the_servers_community_certificate(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    authority = CertificateAuthority()
    ours = authority.issue("https://oldplan.example/fhir")
    cert, key = ours.write(tmp_path, "udap-server")
    payer = server(
        "signed",
        env={
            "PAYERBRIDGE_UDAP_CERTIFICATE": str(cert),
            "PAYERBRIDGE_UDAP_CERTIFICATE_KEY": str(key),
        },
    )
    with payer.anonymous() as anonymous:
        metadata = anonymous.get("/.well-known/udap").json()
    signed = metadata["signed_metadata"]
    header = jws.extract_compact(signed.encode(), registry=CERTIFICATE_HEADERS).headers()
    chain = certificate_chain(header["x5c"])
    assert chain[0] == ours.certificate
    claims = jwt.decode(
        signed,
        ECKey.import_key(chain[0].public_key()),
        algorithms=[header["alg"]],
        registry=CERTIFICATE_HEADERS,
    ).claims
    assert claims["iss"] == claims["sub"] == f"{payer.base_url}/fhir"
    assert claims["registration_endpoint"] == metadata["registration_endpoint"]
    assert claims["token_endpoint"] == metadata["token_endpoint"]
    assert claims["exp"] - claims["iat"] <= 365 * 24 * 3600
