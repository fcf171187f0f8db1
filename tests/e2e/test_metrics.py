"""/metrics scraped while exchanges run, with real processes: an old payer, and a new one
as an API process and a worker sharing their counters (multiprocess mode). The business
metrics move as exchanges complete, fail and wait; the database's state reads the same
from either process; nothing in a label names a member, an exchange or a path's id; and
only an operator, or a scraper on the metrics listener, reads any of it. A scrape during
a partner's outage counts the calls that found it down; every state and reason the
platform knows is there at zero before it happens; the console's pages are counted
apart from the API's routes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from payerbridge.security.model import EXCHANGES_SCOPE, OPERATOR_SCOPE
from payerbridge_tools.sandbox.generator import write_network
from tests.e2e.test_exchange import add_partner, start_old, submit, trust_new, wait_terminal
from tests.processes import ForkedProcess
from tests.servers import ServerProcess, free_port, probe

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
QUICK_RETRIES = {
    "PAYERBRIDGE_RETRY_MAX_ATTEMPTS": "2",
    "PAYERBRIDGE_RETRY_BASE_DELAY_SECONDS": "0.05",
    "PAYERBRIDGE_PARTNER_TIMEOUT_SECONDS": "2",
}


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("network")
    write_network(out, 1, 30, 13, date.today() - timedelta(days=1), switchers=3)
    return out


def parsed(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def scrape(process: ServerProcess) -> tuple[Samples, str]:
    """The process's /metrics, read with an operator's token."""
    with process.client_with(process.register_client("scraper", scope=OPERATOR_SCOPE)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parsed(response.text), response.text


def listener_scrape(port: int, timeout: float = 30) -> Samples:
    """A metrics listener's answer, without a token, once it answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = probe(f"http://127.0.0.1:{port}/metrics", timeout=5)
            assert response.status_code == 200
            return parsed(response.text)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stranger(request: dict[str, Any]) -> dict[str, Any]:
    """Someone the old payer never covered."""
    return {
        **request,
        "member": {**request["member"], "given": ["Zebediah"], "birth_date": "1901-01-01"},
        "old_coverage": {
            **request["old_coverage"],
            "member_id": "ZZ0000001",
            "subscriber_id": "ZZ0000001",
        },
    }


class Payers(NamedTuple):
    old: ServerProcess
    new: ServerProcess  # its API process; a worker runs its exchanges
    worker_port: int  # the worker's own metrics listener
    old_port: int  # the old payer's (`serve`'s) metrics listener
    network: Path


@pytest.fixture(scope="module")
def payers(module_server: Callable[..., ServerProcess], network: Path) -> Iterator[Payers]:
    """The old payer, serving its metrics on a listener too; the new one's API process
    (the "down" partner registered, which nothing answers) and its worker, sharing their
    counters, the worker's own metrics on a listener of its own."""
    info = orjson.loads((network / "network.json").read_bytes())
    old_port = free_port()  # the old payer's own listener, as `serve` runs it
    old = start_old(module_server, network, {"PAYERBRIDGE_METRICS_PORT": str(old_port)})
    new = module_server(
        "new",
        env={
            "PAYERBRIDGE_ORG_NAME": info["platform"]["name"],
            "PAYERBRIDGE_ORG_NPI": info["platform"]["npi"],
            "PAYERBRIDGE_METRICS_MULTIPROCESS": "true",
            **QUICK_RETRIES,
        },
        args=("--no-workers",),
    )
    trust_new(old, new, info)
    add_partner(new, old, info, info["payers"][0]["slug"])
    with new.client() as client:
        created = client.post(
            "/partners",
            json={
                "id": "down",
                "name": "Down",
                "npi": "1245319599",
                "base_url": f"http://127.0.0.1:{free_port()}/fhir",
            },
        )
        assert created.status_code == 201, created.text
    port = free_port()
    worker = ForkedProcess(
        ["worker", "--data-dir", str(new.data_dir), "--worker-id", "w1"]
        + ["--metrics-port", str(port)],
        env=new.env,
        stdout=new.data_dir / "worker.log",
    )
    try:
        yield Payers(old, new, port, old_port, network)
    finally:
        worker.terminate()
        worker.wait(30)


def test_business_metrics_move_as_exchanges_complete_fail_and_wait(
    payers: Payers, network: Path
) -> None:
    old, new, port, old_port, _ = payers
    slug = orjson.loads((network / "network.json").read_bytes())["payers"][0]["slug"]
    before, _ = scrape(new)
    old_before, _ = scrape(old)
    switchers = orjson.loads((network / "switchers.json").read_bytes())
    requests = {
        "completed": switchers[0]["request"],
        "failed": stranger(switchers[1]["request"]),
        "dead_lettered": {**switchers[2]["request"], "old_payer": "down"},
    }
    with new.client() as client:
        ended = {
            state: wait_terminal(client, submit(client, request), timeout=90)
            for state, request in requests.items()
        }
    assert {state: e["state"] for state, e in ended.items()} == {s: s for s in requests}
    after, new_text = scrape(new)
    on_worker = listener_scrape(port)
    old_listener = listener_scrape(old_port)
    old_after, old_text = scrape(old)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    # The database's state: an exchange in each end, the dead letter waiting, and the
    # same from the worker's own listener (no token there).
    assert total(after, "payerbridge_exchanges", state="completed") == 1
    assert total(after, "payerbridge_exchanges", state="failed", reason_code="no-match") == 1
    assert total(after, "payerbridge_exchanges", state="dead_lettered") == 1
    assert total(after, "payerbridge_dead_letters", step="member-match") == 1
    assert total(after, "payerbridge_database_readings_up") == 1
    assert total(on_worker, "payerbridge_exchanges") == total(after, "payerbridge_exchanges") == 3
    assert total(on_worker, "payerbridge_dead_letters") == 1
    # The events, counted where they happened (the worker), summed into the API's answer.
    transitions = "payerbridge_exchange_transitions_total"
    assert moved(transitions, state="completed") == 1
    assert moved(transitions, state="failed", reason_code="no-match") == 1
    assert moved(transitions, state="dead_lettered", reason_code="attempts-exhausted") == 1
    assert moved("payerbridge_exchange_retries_total", reason="partner-unavailable") == 1
    assert moved("payerbridge_consent_decisions_total", outcome="permit") >= 3
    calls = "payerbridge_partner_requests_total"
    member_match = {"partner": slug, "method": "POST", "operation": "$member-match"}
    assert moved(calls, **member_match, status="200") == 1
    assert moved(calls, **member_match, status="422") == 1
    assert moved(calls, partner="down", status="none", outcome="unreachable") >= 2
    assert moved("payerbridge_partner_request_duration_seconds_count", partner=slug) >= 2
    assert total(on_worker, calls, partner="down") == total(after, calls, partner="down")
    # HTTP by route template: the exchanges' ids are not in it.
    assert moved("payerbridge_http_requests_total", route="/exchanges/{exchange_id}") >= 3
    # The old payer decided one match and one no-match under the single-exchange policy.
    decisions = "payerbridge_member_match_decisions_total"
    for outcome in ("match", "nomatch"):
        labels = {"policy": "single_exchange", "outcome": outcome}
        assert total(old_after, decisions, **labels) - total(old_before, decisions, **labels) == 1
    matched = {"policy": "single_exchange", "outcome": "match"}
    assert total(old_listener, decisions, **matched) == total(old_after, decisions, **matched)
    # No label names a member or an exchange.
    for request in requests.values():
        member = request["member"]
        secrets = [*member["given"], member["family"], member["birth_date"]]
        secrets += [request["old_coverage"]["member_id"], request["old_coverage"]["subscriber_id"]]
        for text in (new_text, old_text):
            assert not [s for s in secrets if s in text], secrets
    for exchange in ended.values():
        assert exchange["id"] not in new_text


def test_metrics_are_for_operators_and_bad_parameters_are_refused(
    payers: Payers,
) -> None:
    new = payers.new
    with new.anonymous() as anonymous:
        refused = anonymous.get("/metrics")
    assert refused.status_code == 401 and refused.json()["issue"][0]["code"] == "login"
    token = new.register_client("portal", scope=EXCHANGES_SCOPE)
    with new.client_with(token) as portal:
        forbidden = portal.get("/metrics")
    assert forbidden.status_code == 403 and forbidden.json()["issue"][0]["code"] == "forbidden"
    with new.client() as operator:
        unknown = operator.get("/metrics", params={"format": "json", "name[]": "process_open_fds"})
        not_ours = operator.get("/metrics", params={"name[]": "false"})
        # A family with a sample whatever ran before: exchanges may not have yet (the
        # module's tests are spread over workers).
        only = operator.get("/metrics", params={"name[]": "payerbridge_identity_reviews_open"})
        openmetrics = operator.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert unknown.status_code == 400
    assert [i["expression"] for i in unknown.json()["issue"]] == [["format"]]
    assert not_ours.status_code == 400
    assert not_ours.json()["issue"][0]["expression"] == ["query.name[].0"], not_ours.text
    assert only.status_code == 200
    assert {family.name for family in text_string_to_metric_families(only.text)} == {
        "payerbridge_identity_reviews_open"
    }
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_a_scrape_during_a_partner_outage_shows_its_unreachable_calls(payers: Payers) -> None:
    """A partner we hold a token from, and nothing listens at its address: the exchange
    sent to it asks for a token first, and that call finds it down. A scrape while it is
    down counts the calls, unreachable, with no HTTP status; the known series are there
    at zero (dead letters by step and reason, the rule's clocks by standing, a match
    after a review); the console's pages are labelled apart from the API's routes."""
    new = payers.new
    switcher = orjson.loads((payers.network / "switchers.json").read_bytes())[0]
    with new.client() as client:
        created = client.post(
            "/partners",
            json={
                "id": "outage",
                "name": "Outage",
                "npi": "1245319599",
                "base_url": f"http://127.0.0.1:{free_port()}/fhir",
                "client_id": "platform",
            },
        )
        assert created.status_code == 201, created.text
        before, _ = scrape(new)
        submit(client, {**switcher["request"], "old_payer": "outage"})
        assert client.get("/exchanges").status_code == 200
    with new.anonymous() as anonymous:
        anonymous.get("/console/exchanges", follow_redirects=False)
        anonymous.get("/console/no-such-page", follow_redirects=False)
    calls = "payerbridge_partner_requests_total"
    deadline = time.monotonic() + 60
    while True:
        after, _ = scrape(new)  # the API process: the worker's counters summed in
        failed = total(after, calls, partner="outage") - total(before, calls, partner="outage")
        if failed >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    unreachable = {"partner": "outage", "status": "none", "outcome": "unreachable"}
    assert total(after, calls, **unreachable) - total(before, calls, **unreachable) == failed
    assert failed >= 1
    # The token path (its SMART configuration, then the token) is what the call hits
    # first: before, it was counted nowhere.
    token_path = sum(
        total(after, calls, **unreachable, operation=operation)
        - total(before, calls, **unreachable, operation=operation)
        for operation in ("smart-configuration", "token")
    )
    assert token_path >= 1
    # Every series the platform knows is there, at zero when nothing happened to it.
    letters = {
        (dict(labels)["step"], dict(labels)["reason_code"])
        for name, labels in after
        if name == "payerbridge_dead_letters"
    }
    steps, reasons = ("member-match", "everything"), ("attempts-exhausted", "budget-exhausted")
    assert {(step, reason) for step in steps for reason in reasons} <= letters, letters
    missed = {
        dict(labels)["obligation"]: value
        for (name, labels), value in after.items()
        if name == "payerbridge_obligations_open" and ("standing", "missed") in labels
    }
    assert len(missed) >= 3 and set(missed.values()) <= {0.0}, missed
    reviewed = {"policy": "single_exchange", "outcome": "match", "reason": "review_accepted"}
    decisions = frozenset({**reviewed, "via": "review"}.items())
    assert ("payerbridge_member_match_decisions_total", decisions) in after
    # The console's pages and the API's routes, each under its own label.
    requests = "payerbridge_http_requests_total"
    assert total(after, requests, method="GET", route="/console/exchanges") >= 1
    assert total(after, requests, method="GET", route="/console/{path}") >= 1
    api = total(after, requests, method="GET", route="/exchanges")
    assert api - total(before, requests, method="GET", route="/exchanges") == 1
