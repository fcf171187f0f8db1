"""Partners from a directory bundle, end to end (ADR 0062): an old payer imported from an
NDH-style Bundle with the CLI is held until an operator approves it, then completes an
exchange; a bundle that only moves its endpoint applies at once over HTTP; one that
changes its NPI is held, and rejected; a body that is no Bundle is refused. One old payer
and one new payer for the module."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from payerbridge_tools.sandbox.generator import write_network
from tests.directory_builders import bundle, endpoint, organization
from tests.e2e.test_exchange import start_old, submit, switcher_to, trust_new, wait_terminal
from tests.servers import ServerProcess

DIRECTORY = "e2e-directory"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("network")
    write_network(out, 1, 20, 11, date.today() - timedelta(days=1), switchers=2)
    return out


@pytest.fixture(scope="module")
def payers(
    module_server: Callable[..., ServerProcess], network: Path
) -> tuple[ServerProcess, ServerProcess, dict[str, Any]]:
    info = orjson.loads((network / "network.json").read_bytes())
    old = start_old(module_server, network)
    new = module_server(
        "new",
        env={
            "PAYERBRIDGE_ORG_NAME": info["platform"]["name"],
            "PAYERBRIDGE_ORG_NPI": info["platform"]["npi"],
        },
    )
    trust_new(old, new, info)
    return old, new, info


def _directory(name: str, npi: str, address: str) -> dict[str, Any]:
    """The old payer as the directory describes it, beside a provider's endpoint of
    another use case."""
    return bundle(
        organization("old", name, npi, ["p2p", "access"]),
        endpoint("p2p", address),
        endpoint("access", address.replace("/fhir", "/patient-access"), use="patientAccess"),
        identifier=DIRECTORY,
    )


def _partner_id(info: dict[str, Any]) -> str:
    from payerbridge.routing.directory_bundle import partner_id_of

    return partner_id_of(info["payers"][0]["name"], info["payers"][0]["npi"])


@pytest.fixture(scope="module")
def imported(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The old payer imported with the CLI and approved; its partner id."""
    old, new, info = payers
    old_info = info["payers"][0]
    path = tmp_path_factory.mktemp("directory") / "directory.json"
    path.write_bytes(orjson.dumps(_directory(old_info["name"], old_info["npi"], old.fhir_base)))
    done = new.cli("partners", "import", str(path), "--json")
    assert done.returncode == 0, done.stderr
    (result,) = orjson.loads(done.stdout)["organizations"]
    assert (result["partner_id"], result["outcome"]) == (_partner_id(info), "created-pending")
    # Held: no partner yet, and the same bundle again holds nothing more.
    with new.client() as client:
        assert client.get(f"/partners/{_partner_id(info)}").status_code == 404
    again = orjson.loads(new.cli("partners", "import", str(path), "--json").stdout)
    assert again["organizations"][0]["proposal_id"] == result["proposal_id"]
    listed = orjson.loads(new.cli("partners", "proposals", "--json").stdout)
    assert [p["id"] for p in listed] == [result["proposal_id"]]
    approved = new.cli("partners", "approve", result["proposal_id"], "--client-id", "platform")
    assert approved.returncode == 0, approved.stderr
    assert "registered (smart)" in approved.stdout
    return _partner_id(info)


def test_a_partner_imported_from_a_directory_and_approved_completes_an_exchange(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any]], imported: str, network: Path
) -> None:
    old, new, _info = payers
    with new.client() as client:
        partner = client.get(f"/partners/{imported}").json()
        assert partner["base_url"] == old.fhir_base
        assert [e["source"] for e in partner["endpoints"]] == [f"directory {DIRECTORY}"]
        assert partner["capabilities"] is not None  # read on approval, as any new partner
        location = submit(client, switcher_to(network, 0, imported)["request"])
        exchange = wait_terminal(client, location)
    assert exchange["state"] == "completed", exchange
    with new.platform() as platform:
        trail = platform.audit.for_entity("Partner", imported)
    assert {"partner.directory-import", "partner.proposal", "partner.register"} <= {
        e["action"] for e in trail
    }


def test_a_bundle_that_only_moves_the_endpoint_applies_at_once(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any]], imported: str
) -> None:
    old, new, info = payers
    moved = f"http://localhost:{old.port}/fhir"
    document = _directory(info["payers"][0]["name"], info["payers"][0]["npi"], moved)
    with new.client() as client:
        response = client.post(
            "/partners/$import", content=orjson.dumps(document), headers=FHIR_JSON
        )
        assert response.status_code == 200, response.text
        (result,) = response.json()["organizations"]
        assert (result["outcome"], result["proposal_id"]) == ("updated", None), result
        assert f"added {moved} (active, priority 1)" in result["changes"]
        partner = client.get(f"/partners/{imported}").json()
        assert partner["base_url"] == moved
        assert client.get("/partners/proposals").json()["proposals"] == []
        # The same bundle again: unchanged.
        again = client.post("/partners/$import", content=orjson.dumps(document), headers=FHIR_JSON)
        assert again.json()["organizations"][0]["outcome"] == "unchanged"


def test_a_bundle_that_changes_the_npi_is_held_and_can_be_rejected(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any]], imported: str
) -> None:
    old, new, info = payers
    with new.client() as client:
        before = client.get(f"/partners/{imported}").json()
        document = _directory(info["payers"][0]["name"], "1234567893", before["base_url"])
        response = client.post(
            "/partners/$import", content=orjson.dumps(document), headers=FHIR_JSON
        )
        (result,) = response.json()["organizations"]
        assert result["outcome"] == "pending" and "NPI changes" in result["why"]
        after = client.get(f"/partners/{imported}").json()
        assert (after["npi"], after["endpoints"]) == (before["npi"], before["endpoints"])
        (held,) = client.get("/partners/proposals").json()["proposals"]
        assert held["id"] == result["proposal_id"] and held["organization"]["npi"] == "1234567893"
        rejected = client.post(f"/partners/proposals/{held['id']}/$reject", json={"note": "no"})
        assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
        late = client.post(f"/partners/proposals/{held['id']}/$approve")
        assert late.status_code == 409
        assert late.json()["issue"][0]["code"] == "conflict"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b'{"resourceType": "Patient"}', "application/fhir+json", 422, "invalid"),
        (
            orjson.dumps(bundle(endpoint("a", "https://a.example/fhir", use="patientAccess"))),
            "application/fhir+json",
            422,
            "business-rule",
        ),
        (b"not json", "application/fhir+json", 400, None),
        (b"{}", "text/plain", 415, None),
    ],
)
def test_a_body_that_is_no_directory_bundle_is_refused(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any]],
    body: bytes,
    content_type: str,
    status: int,
    code: str | None,
) -> None:
    _old, new, _info = payers
    with new.client() as client:
        response = client.post(
            "/partners/$import", content=body, headers={"Content-Type": content_type}
        )
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    if code is not None:
        assert response.json()["issue"][0]["code"] == code


def test_the_sandbox_directory_is_imported_and_approved_for_a_demo(
    payers: tuple[ServerProcess, ServerProcess, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What ``make run`` calls: the old payer is the sandbox's payer-a (same network)."""
    from payerbridge_tools.sandbox.directory import import_sandbox_directory

    old, new, info = payers
    for name, value in new.env.items():  # act as the new payer's platform, as its CLI does
        if name.startswith("PAYERBRIDGE_"):
            monkeypatch.setenv(name, value)
    said = import_sandbox_directory(new.data_dir, {"payer-a": old.base_url}, "platform")
    assert [(s["partner_id"], s["outcome"]) for s in said] == [
        ("payer-a", "created-pending"),
        ("payer-a", "approved"),
    ]
    with new.client() as client:
        partner = client.get("/partners/payer-a").json()
    assert (partner["npi"], partner["base_url"]) == (info["payers"][0]["npi"], old.fhir_base)
    assert (partner["auth"], partner["client_id"]) == ("smart", "platform")
    assert partner["endpoints"][0]["versions"] == ["2.0"]
