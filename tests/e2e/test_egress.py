"""Outbound calls only where the partner is, end to end: a real payerbridge process and
partners in this process that misbehave.

- a partner's SMART configuration that names a token endpoint on another origin gets no
  assertion there: the reading records the refusal and the exchange's route says why;
- a partner's ``$everything`` answer over the cap fails the exchange, and the partner
  is not read to the end;
- with no network listed (production), partner URLs, ``jwks_url`` fetches and webhooks
  on loopback, link-local, multicast and the NAT64, 6to4 and IPv4-mapped forms of
  loopback are refused, over HTTP and the CLI;
- a forged ``Host`` header is never reflected in a redirect.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.test_exchange import network, submit, wait_terminal  # noqa: F401
from tests.servers import ALL_SCOPES, ServerProcess, new_signing_key, public_jwk

Answer = tuple[int, dict[str, str], bytes | Callable[[], Iterator[bytes]]]


@dataclass
class FakeHost:
    """An HTTP server in this process: answers by path, keeps every request it got."""

    routes: dict[str, Answer]
    requests: list[tuple[str, str]] = field(default_factory=list)
    streamed: int = 0  # bytes of streamed answers actually sent
    url: str = ""

    def seen(self, method: str) -> list[str]:
        return [path for m, path in self.requests if m == method]


@pytest.fixture
def hosts() -> Iterator[Callable[[dict[str, Answer]], FakeHost]]:
    started: list[ThreadingHTTPServer] = []

    def start(routes: dict[str, Answer]) -> FakeHost:
        state = FakeHost(routes)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                state.requests.append((self.command, path))
                status, headers, body = state.routes.get(path, (404, {}, b"{}"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if isinstance(body, bytes):
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_header("Connection", "close")  # no length: the body runs to close
                self.end_headers()
                try:
                    for chunk in body():
                        self.wfile.write(chunk)
                        state.streamed += len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what the cap is for

            do_GET = do_POST = _answer  # noqa: N815 - the http.server API

            def log_message(self, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        return state

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def _json(document: dict[str, Any]) -> Answer:
    return 200, {"Content-Type": "application/json"}, orjson.dumps(document)


CAPABILITIES = {
    "resourceType": "CapabilityStatement",
    "fhirVersion": "4.0.1",
    "rest": [
        {
            "mode": "server",
            "operation": [
                {"name": "member-match", "definition": "http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match"},
                {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
            ],
        }
    ],
}  # fmt: skip


def _partner_request(network: Path) -> tuple[dict[str, Any], dict[str, Any]]:  # noqa: F811
    info = orjson.loads((network / "network.json").read_bytes())
    switcher = orjson.loads((network / "switchers.json").read_bytes())[0]
    return info["payers"][0], switcher["request"]


def _register(client: httpx.Client, old: dict[str, Any], base_url: str, **more: str) -> Any:
    body = {"id": old["slug"], "name": old["name"], "npi": old["npi"], "base_url": base_url}
    return client.post("/partners", json={**body, **more})


def test_a_token_endpoint_on_another_origin_gets_no_assertion(
    server: Callable[..., ServerProcess],
    hosts: Callable[[dict[str, Answer]], FakeHost],
    network: Path,  # noqa: F811
) -> None:
    attacker = hosts({"/token": _json({"access_token": "stolen", "expires_in": 300})})
    # Another origin: the partner is on 127.0.0.1, the endpoint on localhost (same machine).
    elsewhere = attacker.url.replace("127.0.0.1", "localhost") + "/token"
    partner = hosts(
        {
            "/fhir/metadata": _json(CAPABILITIES),
            "/fhir/.well-known/smart-configuration": _json({"token_endpoint": elsewhere}),
        }
    )
    old, request = _partner_request(network)
    new = server("new")
    with new.client() as client:
        registered = _register(client, old, f"{partner.url}/fhir", client_id="platform")
        assert registered.status_code == 201, registered.text
        refused = registered.json()["capabilities"]["refused_endpoints"]["token"]
        assert "another origin" in refused and "token_url" in refused
        exchange = wait_terminal(client, submit(client, request))
    assert exchange["state"] == "failed"
    assert exchange["error"]["code"] == "no-route"
    assert "token endpoint is refused" in exchange["error"]["text"]
    assert attacker.requests == []  # no assertion, nothing at all, went there
    assert partner.seen("POST") == []  # and no member data to the partner without a token


def _member_match_answer() -> Answer:
    return _json(
        {
            "resourceType": "Parameters",
            "parameter": [
                {
                    "name": "MemberIdentifier",
                    "valueIdentifier": {"system": "urn:old", "value": "m-1"},
                },
                {"name": "MemberId", "valueReference": {"reference": "Patient/m-1"}},
            ],
        }
    )  # fmt: skip


def _endless_bundle() -> Iterator[bytes]:
    yield b'{"resourceType":"Bundle","type":"searchset","entry":['
    entry = b'{"resource":{"resourceType":"Observation","status":"final"}},'
    for _ in range(100 * 1024 * 1024 // len(entry) // 256):  # 100 MB, as in the report
        yield entry * 256


def test_an_everything_answer_over_the_cap_fails_the_exchange_unread(
    server: Callable[..., ServerProcess],
    hosts: Callable[[dict[str, Answer]], FakeHost],
    network: Path,  # noqa: F811
) -> None:
    partner = hosts(
        {
            "/fhir/metadata": _json(CAPABILITIES),
            "/fhir/Patient/$member-match": _member_match_answer(),
            "/fhir/Patient/m-1/$everything": (200, {}, _endless_bundle),
        }
    )  # fmt: skip
    old, request = _partner_request(network)
    cap = 1024 * 1024
    new = server("new", env={"PAYERBRIDGE_PARTNER_MAX_ANSWER_BYTES": str(cap)})
    with new.client() as client:
        assert _register(client, old, f"{partner.url}/fhir").status_code == 201
        exchange = wait_terminal(client, submit(client, request))
    assert exchange["state"] == "failed", exchange
    assert "larger than 1048576 bytes" in exchange["error"]["text"]
    assert "PARTNER_MAX_ANSWER_BYTES" in exchange["error"]["text"]
    assert partner.seen("GET").count("/fhir/Patient/m-1/$everything") == 1  # not retried
    assert partner.streamed < 100 * 1024 * 1024 // 4  # we stopped reading long before the end


NOT_PUBLIC = [
    "127.0.0.1",
    "[::1]",
    "169.254.169.254",  # cloud metadata
    "224.0.0.1",  # multicast
    "[::ffff:127.0.0.1]",  # IPv4-mapped loopback
    "[64:ff9b::7f00:1]",  # NAT64 of loopback
    "[2002:7f00:1::1]",  # 6to4 of loopback
    "[ff02::1]",
]


@pytest.fixture(scope="module")
def production_like(module_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A server whose operator listed no network: public addresses only, https only. The
    module's tests share it: each is refused what it asks (nothing it asks is kept), under
    the one client authorized here."""
    payer = module_server("prod-like", env={"PAYERBRIDGE_EGRESS_ALLOWED_NETWORKS": "[]"})
    return payer.authorize("tester", scope=ALL_SCOPES)


def test_partners_on_addresses_that_are_not_public_are_refused(
    production_like: ServerProcess, hosts: Callable[[dict[str, Answer]], FakeHost]
) -> None:
    partner = hosts({"/fhir/metadata": _json(CAPABILITIES)})
    old = {"slug": "old-plan", "name": "Old Plan", "npi": "1245319599"}
    port = partner.url.rsplit(":", 1)[1]
    with production_like.client() as client:
        for host in NOT_PUBLIC:
            for scheme in ("http", "https"):
                answer = _register(client, old, f"{scheme}://{host}:{port}/fhir")
                assert answer.status_code == 422, (host, answer.text)
                issue = answer.json()["issue"][0]
                assert issue["expression"] == ["base_url"]
                assert "not a public address" in issue["details"]["text"], issue
        public_base = "https://fhir.payer.example/fhir"  # does not resolve here: checked later
        token = _register(
            client, old, public_base, client_id="us", token_url=f"http://127.0.0.1:{port}/token"
        )
        assert token.status_code == 422
        assert token.json()["issue"][0]["expression"] == ["token_url"]
        assert client.get("/partners").json() == []
    assert partner.requests == []  # nothing was sent to any of them
    added = production_like.cli(
        "partners", "add", "--id", "old-plan", "--name", "Old Plan", "--npi", "1245319599",
        "--base-url", f"http://[64:ff9b::7f00:1]:{port}/fhir",
    )  # fmt: skip
    assert added.returncode != 0
    assert "not a public address" in added.stdout + added.stderr


def test_webhooks_to_multicast_nat64_and_6to4_forms_of_loopback_are_refused(
    production_like: ServerProcess,
) -> None:
    with production_like.client() as client:
        answers = {
            host: client.post("/webhooks", json={"url": f"https://{host}/hooks"})
            for host in NOT_PUBLIC
        }
    accepted = [host for host, answer in answers.items() if answer.status_code != 422]
    assert accepted == []  # before: multicast, NAT64 and 6to4 forms were accepted
    for answer in answers.values():
        assert "not a public address" in answer.json()["issue"][0]["details"]["text"]


def test_a_jwks_url_on_loopback_is_never_fetched(
    production_like: ServerProcess, hosts: Callable[[dict[str, Answer]], FakeHost]
) -> None:
    key = new_signing_key()
    jwks = hosts({"/jwks": _json({"keys": [public_jwk(key)]})})
    with production_like.client() as client:
        registered = client.post(
            "/clients",
            json={
                "id": "fetcher",
                "name": "Fetcher",
                "npi": "1245319599",
                "scope": "system/*.rs",
                "jwks_url": f"{jwks.url}/jwks",
            },
        )
    assert registered.status_code == 422, registered.text  # refused at registration
    assert registered.json()["issue"][0]["expression"] == ["jwks_url"]
    with production_like.client() as client:
        assert client.get("/clients/fetcher").status_code == 404
    added = production_like.cli(
        "clients", "add", "--id", "fetcher", "--name", "Fetcher", "--npi", "1245319599",
        "--scope", "system/*.rs", "--jwks-url", f"{jwks.url}/jwks",
    )  # fmt: skip
    assert added.returncode != 0
    assert "jwks_url" in added.stdout + added.stderr
    assert jwks.requests == []


def test_a_forged_host_is_not_reflected_in_redirects(production_like: ServerProcess) -> None:
    with production_like.client() as client:
        for path in ("/exchanges/", "/partners/", "/webhooks/"):
            answer = client.get(path, headers={"Host": "attacker.example"}, follow_redirects=False)
            assert answer.status_code in (301, 307, 308), (path, answer.status_code)
            location = answer.headers["location"]
            assert "attacker.example" not in location
            assert location.startswith(production_like.base_url), location
        forwarded = client.get(
            "/exchanges/",
            headers={"Host": "attacker.example:443", "X-Forwarded-Proto": "https"},
            follow_redirects=False,
        )
        assert forwarded.headers["location"] == f"{production_like.base_url}/exchanges"
