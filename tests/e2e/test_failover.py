"""A partner with several endpoints (issue 73, ADR 0060), with real processes on SQLite
and PostgreSQL. One new payer and one old payer serve the module; an endpoint that is
"stopped" is an address nothing listens at.

- Two endpoints, the first stopped: the exchange completes on the second at once, its
  route names both (the first called first, the second if it fails) and its calls show
  the first unanswered, then the second answering.
- An exchange waiting on a partner whose one endpoint is down completes once the
  directory moves the partner to an endpoint that answers: its next step reads the
  directory again.
- An endpoint that is off is never called, even when it is first by priority.
- The same with a directory: a partner imported from an NDH bundle at an endpoint that is
  down, its exchange waiting, is moved by the next import of the bundle, and the
  exchange's next step goes there."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from payerbridge_tools.sandbox.generator import write_network
from tests.directory_builders import one_payer
from tests.e2e.test_orchestration import old_payer, requests_for
from tests.e2e.test_partner_outage import ENDS, _submit, _wait_for
from tests.servers import ServerProcess, free_port

SETTINGS = {
    "PAYERBRIDGE_BREAKER_FAILURE_THRESHOLD": "2",
    "PAYERBRIDGE_BREAKER_COOLDOWN_SECONDS": "1",
    "PAYERBRIDGE_RETRY_BASE_DELAY_SECONDS": "0.05",
    "PAYERBRIDGE_RETRY_MAX_DELAY_SECONDS": "0.5",
    "PAYERBRIDGE_RETRY_LONGEST_DELAY_SECONDS": "1",
    "PAYERBRIDGE_PARTNER_TIMEOUT_SECONDS": "1",
    "PAYERBRIDGE_UPKEEP_SWEEP_SECONDS": "2",
}
NEW_NPI = "1234567893"


class Payers:
    def __init__(self, new: ServerProcess, old: ServerProcess, network: Path) -> None:
        self.new, self.old, self.network = new, old, network

    @property
    def fhir(self) -> str:
        return f"{self.old.base_url}/fhir"

    def register(self, client: httpx.Client, partner_id: str, endpoints: list[Any]) -> None:
        body = {
            "id": partner_id,
            "name": f"Plan {partner_id}",
            "npi": self.old.env["PAYERBRIDGE_ORG_NPI"],
            "endpoints": endpoints,
            "client_id": "newplan",
            "token_url": f"{self.old.base_url}/auth/token",  # the old payer's own (ADR 0027)
        }
        response = client.post("/partners", json=body)
        assert response.status_code in (200, 201), response.text

    def request(self, partner_id: str, n: int) -> dict[str, Any]:
        return requests_for(self.network, partner_id, n + 1)[n]


@pytest.fixture(scope="module")
def payers(
    module_server: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory
) -> Payers:
    network = tmp_path_factory.mktemp("network")
    write_network(network, 1, 12, 5, date.today() - timedelta(days=1), switchers=4)
    old = old_payer(module_server, network)
    new = module_server("new", env=SETTINGS)
    old.trust(new, "newplan", npi=NEW_NPI)
    return Payers(new, old, network)


def _stopped() -> str:
    return f"http://127.0.0.1:{free_port()}/fhir"


def _ended(client: httpx.Client, location: str, timeout: float = 60) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        exchange: dict[str, Any] = client.get(location).json()
        return exchange if exchange["state"] in ENDS else None

    found: dict[str, Any] = _wait_for(ended, timeout, "the exchange did not end")
    return found


def test_the_first_endpoint_stopped_the_exchange_completes_on_the_second(payers: Payers) -> None:
    stopped = _stopped()
    with payers.new.client() as client:
        payers.register(
            client, "two-sites", [{"url": stopped}, {"url": payers.fhir, "priority": 1}]
        )
        shown = client.get("/partners/two-sites").json()
        assert [e["url"] for e in shown["endpoints"]] == [stopped, payers.fhir]
        assert shown["base_url"] == stopped

        location = _submit(client, payers.request("two-sites", 0))
        exchange = _ended(client, location)
        assert exchange["state"] == "completed", exchange
        route = exchange["route"]
        assert [(e["url"], e["why"].split(" (")[0]) for e in route["endpoints"]] == [
            (stopped, "called first"),
            (payers.fhir, "called if those before it fail"),
        ]
        calls = client.get(f"{location}/audit").json()["partner_calls"]
    by_step = [(c["step"], c["endpoint"], c["outcome"]) for c in calls]
    assert by_step[:2] == [
        ("member-match", stopped, "unavailable"),
        ("member-match", payers.fhir, "answered"),
    ], by_step
    assert all(endpoint != stopped for _, endpoint, outcome in by_step if outcome != "unavailable")


def test_a_waiting_exchange_goes_where_the_directory_moves_its_partner(payers: Payers) -> None:
    with payers.new.client() as client:
        payers.register(client, "moving", [{"url": _stopped()}])
        location = _submit(client, payers.request("moving", 1))

        def waiting() -> bool:
            retries = client.get(f"{location}/audit").json()["retries"]
            return len(retries) >= 2  # its calls went unanswered (or parked on the breaker)

        _wait_for(waiting, 30, "the exchange did not wait on the stopped endpoint")
        assert client.get(location).json()["state"] not in ENDS
        payers.register(client, "moving", [{"url": payers.fhir}])  # the directory moves it

        exchange = _ended(client, location)
        assert exchange["state"] == "completed", exchange
        calls = client.get(f"{location}/audit").json()["partner_calls"]
    answered = [c["endpoint"] for c in calls if c["outcome"] == "answered"]
    assert answered and set(answered) == {payers.fhir}, calls


def test_an_endpoint_that_is_off_is_never_called(payers: Payers) -> None:
    off = _stopped()
    with payers.new.client() as client:
        payers.register(
            client,
            "with-off",
            [
                {"url": off, "priority": -5, "status": "off", "note": "decommissioned"},
                {"url": payers.fhir},
            ],
        )
        assert client.get("/partners/with-off").json()["base_url"] == payers.fhir
        location = _submit(client, payers.request("with-off", 2))
        exchange = _ended(client, location)
        assert exchange["state"] == "completed", exchange
        [skipped, first] = exchange["route"]["endpoints"]
        assert (skipped["url"], skipped["why"]) == (off, "skipped: off (decommissioned)")
        assert first["url"] == payers.fhir
        calls = client.get(f"{location}/audit").json()["partner_calls"]
    assert calls and {c["endpoint"] for c in calls} == {payers.fhir}, calls


def test_the_cli_registers_a_partner_with_another_endpoint_to_fail_over_to(
    payers: Payers,
) -> None:
    stopped = _stopped()
    added = payers.new.cli(
        "partners", "add", "--id", "cli-sites", "--name", "CLI Sites",
        "--npi", payers.old.env["PAYERBRIDGE_ORG_NPI"], "--base-url", stopped,
        "--also", payers.fhir,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    shown = payers.new.cli("partners", "show", "cli-sites")
    assert shown.returncode == 0, shown.stderr
    endpoints = json.loads(shown.stdout)["endpoints"]
    assert [(e["url"], e["priority"], e["status"]) for e in endpoints] == [
        (stopped, 0, "active"),
        (payers.fhir, 1, "active"),
    ]


def test_a_running_exchange_goes_where_a_directory_update_moves_its_partner(
    payers: Payers,
) -> None:
    npi, name = payers.old.env["PAYERBRIDGE_ORG_NPI"], "Moved By Directory"
    fhir_json = {"Content-Type": "application/fhir+json"}

    def imported(address: str) -> dict[str, Any]:
        document = one_payer(name, npi, address, directory="failover-directory")
        response = client.post("/partners/$import", content=json.dumps(document), headers=fhir_json)
        assert response.status_code == 200, response.text
        [result] = response.json()["organizations"]
        return dict(result)

    with payers.new.client() as client:
        held = imported(_stopped())
        partner_id = held["partner_id"]
        approval = {"client_id": "newplan"}
        approved = client.post(f"/partners/proposals/{held['proposal_id']}/$approve", json=approval)
        assert approved.status_code == 200, approved.text
        location = _submit(client, payers.request(partner_id, 3))

        def waiting() -> bool:
            return len(client.get(f"{location}/audit").json()["retries"]) >= 2

        _wait_for(waiting, 30, "the exchange did not wait on the stopped endpoint")
        moved = imported(payers.fhir)
        assert moved["outcome"] == "updated", moved

        exchange = _ended(client, location)
        assert exchange["state"] == "completed", exchange
        calls = client.get(f"{location}/audit").json()["partner_calls"]
    answered = {c["endpoint"] for c in calls if c["outcome"] == "answered"}
    assert answered == {payers.fhir}, calls
