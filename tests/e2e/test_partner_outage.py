"""A partner stopped and started again while exchanges are submitted, with real processes
(issue 68, ADR 0047): every exchange completes without anyone's help, the partner is
probed once per interval while it is down (not once per exchange), and a partner that
stays down past the deadline dead-letters with ``deadline-exceeded``. On SQLite and
PostgreSQL.

The issue's drill stops the partner for 3 minutes, against deadlines of a day and a
probe every 30 s. Here the timings are settings scaled to seconds: a probe every second,
backoff capped at half a second, a partner's deadline of a few seconds. One new payer
and one old payer serve the module; the old payer sits behind a proxy that logs every
call it receives (its address for us), so the calls and probes a stopped partner would
have received are counted."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from payerbridge_tools.sandbox.generator import write_network
from tests.e2e.test_metrics import scrape, total
from tests.e2e.test_orchestration import old_payer, register, requests_for
from tests.servers import ServerProcess, free_port, new_key, probe, start_server

PROBE_INTERVAL = 1.0
SETTINGS = {
    "PAYERBRIDGE_BREAKER_FAILURE_THRESHOLD": "2",
    "PAYERBRIDGE_BREAKER_COOLDOWN_SECONDS": str(PROBE_INTERVAL),  # the probe interval
    "PAYERBRIDGE_RETRY_BASE_DELAY_SECONDS": "0.05",
    "PAYERBRIDGE_RETRY_MAX_DELAY_SECONDS": "0.5",
    "PAYERBRIDGE_RETRY_LONGEST_DELAY_SECONDS": "1",
    "PAYERBRIDGE_PARTNER_TIMEOUT_SECONDS": "1",
    # Quiet partners checked within seconds (a day's sweep is every 30 s, a check 5 min).
    "PAYERBRIDGE_UPKEEP_SWEEP_SECONDS": "2",
    "PAYERBRIDGE_PARTNER_CHECK_SECONDS": "3",
}
OPEN = "circuit-open"
ENDS = {"completed", "partial", "conflict", "failed", "blocked", "dead_lettered"}


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("network")
    write_network(out, 1, 12, 5, date.today() - timedelta(days=1), switchers=3)
    return out


class Outage:
    """The module's payers: the new one, the old one and the proxy in front of it."""

    def __init__(self, new: ServerProcess, old: ServerProcess, proxy_url: str, log: Path):
        self.new, self.old, self.proxy_url, self.log = new, old, proxy_url, log
        self.restarted: list[ServerProcess] = []

    def stop_partner(self) -> float:
        self.old.stop()
        return time.time()

    def start_partner(self) -> float:
        """The old payer again, on the same address, data and database."""
        old = self.old
        self.old = start_server(old.data_dir, env=old.env, import_files=[], port=old.port)
        self.restarted.append(self.old)
        return time.time()

    def calls(self, since: float, until: float) -> list[dict[str, Any]]:
        """What the partner's address received between the two instants."""
        lines = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [line for line in lines if since <= line["at"] < until]


@pytest.fixture(scope="module")
def outage(
    module_server: Callable[..., ServerProcess],
    network: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Outage]:
    old = old_payer(module_server, network)
    log = tmp_path_factory.mktemp("proxy") / "calls.jsonl"
    port = free_port()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "tests.faultproxy", "--port", str(port)]
        + ["--upstream", old.base_url, "--log", str(log)],
        stderr=subprocess.DEVNULL,
    )
    new = module_server("new", env=SETTINGS)
    old.trust(new, "newplan", npi="1234567893")
    _wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 20, "the proxy")
    found = Outage(new, old, f"http://127.0.0.1:{port}/fhir", log)
    with new.client() as client:  # its token endpoint is the old payer's own (ADR 0027)
        token_url = f"{old.base_url}/auth/token"
        register(
            client, "old", found.proxy_url, old.env["PAYERBRIDGE_ORG_NPI"], "newplan", token_url
        )
    try:
        yield found
    finally:
        for process in found.restarted:
            process.stop()
        proxy.terminate()
        proxy.wait(10)


def _answers(url: str) -> bool:
    try:
        return probe(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_for(ready: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := ready():
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def _submit(client: httpx.Client, request: dict[str, Any]) -> str:
    response = client.post("/exchanges", json=request, headers=new_key())
    assert response.status_code == 202, response.text
    return str(response.headers["location"])


def _ended(client: httpx.Client, locations: list[str], timeout: float) -> list[dict[str, Any]]:
    def all_ended() -> list[dict[str, Any]] | None:
        exchanges = [client.get(location).json() for location in locations]
        return exchanges if all(e["state"] in ENDS for e in exchanges) else None

    return _wait_for(all_ended, timeout, "the exchanges did not all end")  # type: ignore[no-any-return]


def _breaker(client: httpx.Client, partner: str) -> dict[str, Any]:
    return client.get(f"/partners/{partner}").json()["breaker"]  # type: ignore[no-any-return]


def test_exchanges_submitted_while_the_partner_is_down_complete_when_it_is_back(
    outage: Outage, network: Path
) -> None:
    new = outage.new
    requests = requests_for(network, "old", 4)
    with new.client() as client:
        warm = _ended(client, [_submit(client, requests[0])], 60)  # a token, a reading
        assert warm[0]["state"] == "completed", warm

        down = outage.stop_partner()
        locations = []
        for request in requests:  # submitted during the outage, a little apart
            locations.append(_submit(client, request))
            time.sleep(0.3)
        opened = _wait_for(lambda: _breaker(client, "old")["status"] != "closed", 20, "open")
        assert opened  # the first calls' failures opened it
        time.sleep(5)  # down for a while: the exchanges wait, parked on the breaker
        waiting = [client.get(location).json() for location in locations]
        assert all(e["state"] not in ENDS for e in waiting), waiting
        parked = client.get(f"{locations[-1]}/audit").json()["retries"]
        assert any(r["outcome"] == "parked" for r in parked), parked
        park = next(r for r in parked if r["outcome"] == "parked")
        assert park["detail"]["reason"] == "circuit-open"
        assert park["detail"]["next_attempt_at"] and park["detail"]["deadline_at"]

        # The operator sees them parked, and why (one may be looking again just then).
        def parked_seen() -> float:
            samples, _ = scrape(new)
            return total(samples, "payerbridge_exchanges_waiting", partner="old", reason=OPEN)

        assert 1 <= _wait_for(parked_seen, 10, "no exchange seen parked") <= len(locations)
        up = outage.start_partner()

        exchanges = _ended(client, locations, 60)
        assert [e["state"] for e in exchanges] == ["completed"] * len(locations), exchanges
        assert _breaker(client, "old")["status"] == "closed"  # closed again, and says so

    # What the partner's address received while it was down (the proxy answered 502).
    refused = [c for c in outage.calls(down, up) if c["fault"] == "upstream-down"]
    probes = [c for c in refused if c["path"].endswith("/metadata")]
    # One probe per interval, not one per exchange waiting: at most one more than the
    # intervals the outage spanned (four exchanges probing would be four times as many).
    assert 1 <= len(probes) <= math.ceil((up - down) / PROBE_INTERVAL) + 1, probes
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(probes)]
    assert all(gap >= PROBE_INTERVAL * 0.9 for gap in gaps), gaps
    # The exchanges' own calls stopped once the breaker opened: the first few failures
    # opened it, and every call after that was held back until a probe was answered.
    calls = [c for c in refused if not c["path"].endswith("/metadata")]
    assert len(calls) <= len(locations) + 2, calls
    for location in locations:  # parked: waiting spent no attempts
        retries = client_retries(new, location)
        assert retries.count("retry") <= 3 and "gave-up" not in retries, retries


def client_retries(new: ServerProcess, location: str) -> list[str]:
    """The outcomes of an exchange's attempts, from its audit timeline."""
    with new.client() as client:
        return [r["outcome"] for r in client.get(f"{location}/audit").json()["retries"]]


def test_a_partner_down_past_the_deadline_dead_letters_with_deadline_exceeded(
    outage: Outage, network: Path
) -> None:
    new = outage.new
    gone = f"http://127.0.0.1:{free_port()}/fhir"  # nobody listens: refused, unreachable
    with new.client() as client:
        register(client, "gone", gone, "1679576722")
    budget = new.cli(
        "partners", "operations", "gone", "--exchange-budget", "4s",
        "--contact", "Partner on-call;oncall@gone.example;", "--contact", "Desk;;+1 555 0100",
    )  # fmt: skip
    assert budget.returncode == 0, budget.stderr
    shown = json.loads(budget.stdout)
    assert shown["exchange_budget_seconds"] == 4.0
    assert shown["contacts"] == [
        {"name": "Partner on-call", "email": "oncall@gone.example", "phone": None},
        {"name": "Desk", "email": None, "phone": "+1 555 0100"},
    ]
    nameless = new.cli("partners", "operations", "gone", "--contact", ";;+1 555 0100")
    assert nameless.returncode != 0 and "a contact has a name" in nameless.stderr
    with new.client() as client:
        (request,) = requests_for(network, "gone", 1)
        location = _submit(client, request)
        (exchange,) = _ended(client, [location], 30)
        timeline = client.get(f"{location}/audit").json()
        shown = _breaker(client, "gone")

    assert exchange["state"] == "dead_lettered", exchange
    assert exchange["error"]["code"] == "deadline-exceeded"
    assert "deadline" in exchange["error"]["text"]
    letter = exchange["dead_letter"]
    assert letter["reason_code"] == "deadline-exceeded" and letter["step"] == "member-match"
    created, deadline = _instant(exchange["created_at"]), _instant(exchange["deadline_at"])
    assert timedelta(seconds=3.5) <= deadline - created <= timedelta(seconds=4.5)
    ended = _instant(exchange["history"][-1]["at"])
    assert ended - deadline < timedelta(seconds=1), (ended, deadline)  # at it, not past it
    # Its story: the calls that failed, the park on the breaker, and why it ended.
    outcomes = [r["outcome"] for r in timeline["retries"]]
    assert "retry" in outcomes and "parked" in outcomes, outcomes
    last = timeline["events"][-1]
    assert (last["outcome"], last["detail"]["reason_code"]) == (
        "dead_lettered",
        "deadline-exceeded",
    )
    assert last["detail"]["deadline_at"] and last["detail"]["last_error"]
    # The breaker is not "open" past its open_until: it waits for its probe.
    if shown["status"] == "open":
        assert _instant(shown["open_until"]) > _instant(exchange["updated_at"])
    time.sleep(PROBE_INTERVAL * 1.5)
    with new.client() as client:
        read_at = datetime.now(UTC)
        later = _breaker(client, "gone")
    # Its probe is due and nobody is parked on it: half-open (unless the sweep has just
    # probed it, which opens it for another interval).
    assert later["status"] == "half_open" or _instant(later["open_until"]) > read_at, later


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_quiet_partners_are_checked_on_a_schedule_and_their_health_says_so(
    outage: Outage,
) -> None:
    """No exchange runs with them: the sweep checks each one's capabilities and token
    endpoint, and its health reads up, degraded (our credentials refused) or down."""
    new, old = outage.new, outage.old
    token_url = f"{old.base_url}/auth/token"
    npi = "1679576722"
    nobody = f"http://127.0.0.1:{free_port()}/fhir"
    with new.client() as client:
        register(client, "quiet", f"{old.base_url}/fhir", npi, "newplan", token_url)
        register(client, "stranger", f"{old.base_url}/fhir", npi, "not-registered", token_url)
        register(client, "vanished", nobody, npi)

        def checked() -> dict[str, Any] | None:
            found = {p: client.get(f"/partners/{p}/health").json() for p in _QUIET}
            return found if all(h["calls"] for h in found.values()) else None

        health = _wait_for(checked, 30, "the quiet partners were not checked")
    quiet, stranger, vanished = (health[p] for p in _QUIET)
    assert quiet["state"] == "up", quiet
    assert quiet["last_success_at"] and quiet["unanswered"] == 0 and quiet["calls"] >= 2
    assert stranger["state"] == "degraded", stranger
    assert any("refused our credentials" in r for r in stranger["reasons"]), stranger
    assert any(k.startswith("token refused") for k in stranger["error_mix"]), stranger
    assert vanished["state"] == "down" and vanished["last_success_at"] is None, vanished
    assert vanished["breaker"]["status"] == "closed"  # no exchange: only the checks saw it


_QUIET = ("quiet", "stranger", "vanished")
