"""HRex endpoint discovery with real processes (ADR 0061), on SQLite and PostgreSQL: our
``/.well-known/davinci-configuration`` is served without a token, cached by ETag and
valid against HRex 1.2's ``HRexWellknownDefinition`` (checked from the StructureDefinition,
CodeSystem and ValueSet read here); a partner payerbridge is registered from its own
document alone, over HTTP and the CLI, and an exchange with it completes; hostile
documents served by a tiny local server are refused with a 422 and store nothing."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from payerbridge_tools.sandbox.generator import write_network
from tests.e2e.test_exchange import start_old, submit, switcher_to, trust_new, wait_terminal
from tests.fhir_profiles import DATA
from tests.servers import ServerProcess

WELLKNOWN = "/.well-known/davinci-configuration"
HREX = DATA / "hrex-1.2.0"
SETTINGS = {"PAYERBRIDGE_PDEX_VERSION": "2.2.0"}


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("network")
    write_network(out, 1, 12, 5, date.today() - timedelta(days=1), switchers=3)
    return out


@pytest.fixture(scope="module")
def payers(
    module_server: Callable[..., ServerProcess], network: Path
) -> tuple[ServerProcess, ServerProcess, dict[str, Any]]:
    """The old payer (the partner to discover) and the new one, which the old one trusts
    as its client ``platform`` and which puts its own location on the Coverage it links;
    no partner is registered yet."""
    info = orjson.loads((network / "network.json").read_bytes())
    old = start_old(module_server, network, SETTINGS)
    new = module_server(
        "new",
        env={
            "PAYERBRIDGE_ORG_NAME": info["platform"]["name"],
            "PAYERBRIDGE_ORG_NPI": info["platform"]["npi"],
            # Its $member-match names its own davinci-configuration on CoverageToLink.
            "PAYERBRIDGE_WELLKNOWN_ON_COVERAGE": "true",
            **SETTINGS,
        },
    )
    trust_new(old, new, info)
    return old, new, info


def wellknown_violations(document: Any) -> list[str]:
    """What in ``document`` HRex 1.2's logical model forbids, one line each: its
    required elements and cardinalities, the identifier's type, each endpoint key's code
    (from the bound ValueSet's CodeSystem, or a local code: the binding is extensible)
    and each value an absolute URI."""
    definition = json.loads((HREX / "StructureDefinition-HRexWellknownDefinition.json").read_text())
    value_set = json.loads((HREX / "ValueSet-hrex-endpoint-name.json").read_text())
    code_system = json.loads((HREX / "CodeSystem-hrex-endpoint-discovery.json").read_text())
    elements = {e["path"]: e for e in definition["differential"]["element"]}
    root = definition["type"].rsplit("/", 1)[1]
    if not isinstance(document, dict):
        return [f"{root}: not an object"]
    found = []
    for path, element in elements.items():
        name = path.removeprefix(f"{root}.")
        if "." in name or name == root:
            continue
        value = document.get(name)
        count = 0 if value is None else (len(value) if name == "endpoints" else 1)
        if count < element["min"]:
            found.append(f"{path}: {count} found, at least {element['min']}")
        if element["max"] != "*" and count > int(element["max"]):
            found.append(f"{path}: {count} found, at most {element['max']}")
    identifier = document.get("identifier")
    if elements[f"{root}.identifier"]["type"][0]["code"] == "Identifier" and not (
        isinstance(identifier, dict)
        and all(isinstance(identifier.get(k, ""), str) for k in ("system", "value"))
    ):
        found.append(f"{root}.identifier: not an Identifier")
    key = elements[f"{root}.endpoints.key"]
    assert key["binding"]["valueSet"] == value_set["url"]
    assert key["binding"]["strength"] == "extensible"
    [include] = value_set["compose"]["include"]
    assert include["system"] == code_system["url"]
    codes = {concept["code"] for concept in code_system["concept"]}
    assert elements[f"{root}.endpoints.value"]["type"][0]["code"] == "uri"
    for name, uri in (document.get("endpoints") or {}).items():
        code = name.partition("#")[0]
        if code not in codes and (not code or code != code.strip() or " " in code):
            found.append(f"{root}.endpoints.key: {name!r} is not a code")
        parts = urlsplit(uri) if isinstance(uri, str) else None
        if parts is None or not parts.scheme or not parts.netloc:
            found.append(f"{root}.endpoints.value: {uri!r} is not an absolute URI")
    return found


def test_the_guides_own_example_passes_the_check() -> None:
    binary = json.loads((HREX / "example" / "Binary-Wellknown.json").read_text())
    example = json.loads(base64.b64decode(binary["data"]))
    assert wellknown_violations(example) == []
    assert wellknown_violations({"endpoints": {"x": "/relative"}}) == [
        "HRexWellknownDefinition.identifier: 0 found, at least 1",
        "HRexWellknownDefinition.identifier: not an Identifier",
        "HRexWellknownDefinition.endpoints.value: '/relative' is not an absolute URI",
    ]


def test_ours_is_public_cached_and_valid(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any]],
) -> None:
    _, new, info = payers
    with new.anonymous() as client:
        response = client.get(WELLKNOWN)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["cache-control"].startswith("public, max-age=")
        etag = response.headers["etag"]
        assert etag.startswith('"') and not etag.startswith("W/")
        document = response.json()
        assert wellknown_violations(document) == []
        assert document["identifier"] == {
            "system": "http://hl7.org/fhir/sid/us-npi",
            "value": info["platform"]["npi"],
        }
        endpoints = document["endpoints"]
        assert endpoints["davinci_pdex_payer_endpoint"] == new.fhir_base
        assert endpoints["davinci_pdex_payer_endpoint#2.2"] == new.fhir_base
        assert endpoints["davinci_pdex_provider_endpoint"] == new.fhir_base
        for key in ("smart_configuration", "udap_metadata"):
            assert client.get(endpoints[key]).status_code == 200  # each names a real document
        again = client.get(WELLKNOWN, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        assert client.get(WELLKNOWN, headers={"If-None-Match": '"other"'}).status_code == 200


def test_a_partner_is_registered_from_its_document_alone_and_an_exchange_completes(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any]], network: Path, tmp_path: Path
) -> None:
    old, new, info = payers
    old_info = info["payers"][0]
    at = f"{old.base_url}{WELLKNOWN}"
    with new.client() as client:
        response = client.post(
            "/partners/$discover", json={"wellknown_url": at, "client_id": "platform"}
        )
        assert response.status_code == 201, response.text
        partner = response.json()
        partner_id = f"127-0-0-1-{old.port}"  # from the host
        assert response.headers["location"] == f"/partners/{partner_id}"
        assert (partner["id"], partner["npi"]) == (partner_id, old_info["npi"])
        assert partner["name"] == old_info["name"]  # its CapabilityStatement's publisher
        assert [(e["url"], e["versions"], e["source"]) for e in partner["endpoints"]] == [
            (old.fhir_base, ["2.2"], f"well-known {at}")
        ]
        assert partner["capabilities"]["operations"]  # read as any registration is
        assert partner["wellknown"]["endpoints"]["smart_configuration"].startswith(old.base_url)

        location = submit(client, switcher_to(network, 0, partner_id)["request"])
        exchange = wait_terminal(client, location)
        assert exchange["state"] == "completed", exchange

        refreshed = client.post(f"/partners/{partner_id}/$refresh")
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["endpoint_changes"] == []
        audit = client.get(f"/partners/{partner_id}").json()
        assert audit["base_url"] == old.fhir_base

    # The CLI, given the location by a member's old Coverage.
    coverage = tmp_path / "coverage.json"
    extension = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition/extension-CoverageDavinciWellknownLocation"
    coverage.write_text(
        json.dumps({"resourceType": "Coverage", "extension": [{"url": extension, "valueUri": at}]})
    )
    ran = new.cli(
        "partners", "discover", str(coverage), "--id", "old-cli", "--client-id", "platform"
    )
    assert ran.returncode == 0, ran.stderr
    assert f"partner 'old-cli' registered from {at}" in ran.stdout
    assert f"{old.fhir_base} (2.2; well-known {at})" in ran.stdout


class _Hostile(BaseHTTPRequestHandler):
    """Documents no payer should be trusted for, by path."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        port = self.server.server_address[1]
        own = f"http://127.0.0.1:{port}"
        payer = {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1245319599"}
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{port}/other{WELLKNOWN}")
            self.end_headers()
            return
        if self.path.startswith("/huge"):
            body = b'{"identifier": "' + b"x" * (3 * 1024 * 1024) + b'"}'
        elif self.path.startswith("/other"):
            endpoints = {"davinci_pdex_payer_endpoint": "http://127.0.0.2:9/fhir"}
            body = json.dumps({"identifier": payer, "endpoints": endpoints}).encode()
        else:
            endpoints = {"davinci_pdex_payer_endpoint": f"{own}/fhir", "udap_metadata": 7}
            body = json.dumps({"identifier": [payer], "endpoints": endpoints}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)  # a reader that stops at its cap closes early

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("path", "said", "code"),
    [
        ("/other", "another origin", "security"),
        ("/redirect", "redirects to another origin", "security"),
        ("/huge", "larger than", "too-costly"),
        ("/broken", "identifier is required", "required"),
    ],
)
def test_a_hostile_document_is_refused_and_nothing_is_stored(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any]],
    hostile: str,
    path: str,
    said: str,
    code: str,
) -> None:
    _, new, _ = payers
    with new.client() as client:
        before = [p["id"] for p in client.get("/partners").json()]
        response = client.post(
            "/partners/$discover", json={"wellknown_url": f"{hostile}{path}{WELLKNOWN}"}
        )
        assert response.status_code == 422, response.text
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        issues = outcome["issue"]
        assert any(said in i["details"]["text"] and i["code"] == code for i in issues), issues
        assert [p["id"] for p in client.get("/partners").json()] == before


def test_a_request_without_a_usable_location_is_a_400(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any]],
) -> None:
    _, new, _ = payers
    with new.client() as client:
        for body, code in (
            ({}, "required"),
            ({"wellknown_url": "ftp://old.example/x"}, "invalid"),
            ({"coverage": {"resourceType": "Patient"}}, "invalid"),
        ):
            response = client.post("/partners/$discover", json=body)
            assert response.status_code == 400, response.text
            assert response.json()["issue"][0]["code"] == code, response.text
    with new.anonymous() as anonymous:
        assert anonymous.post("/partners/$discover", json={}).status_code == 401
