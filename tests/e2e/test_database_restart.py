"""PostgreSQL restarted while work is in flight, with real processes (issue 68, ADR 0048):
exchanges, a bulk export and an onboarding all finish, each once, without anyone's help,
and a request made while the database is down is answered 503 ``transient`` with
Retry-After, not 500. PostgreSQL leg only.

The suite's PostgreSQL is shared by every test worker, so this module runs its own
throwaway cluster (``tests/pgcluster.py``) and stops and starts that one. Both payers'
databases are on it: the new payer's holds the exchanges, the onboarding and DBOS's
queues (its server and a worker process of its own work them); the old payer's holds its
bulk jobs (the export we ask for, and the ``$bulk-member-match`` and export the
onboarding asks for) and answers the exchanges' calls. The old payer sits behind a proxy
that holds every call half a second, so the exchanges and the onboarding are still
talking to it when the database goes away."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, create_engine, select

from payerbridge.fhir.resources import is_member_record
from payerbridge.store.tables import audit_events, fhir_resources
from payerbridge_tools.sandbox.generator import write_network
from tests.builders import member_match_parameters
from tests.conftest import BACKEND
from tests.e2e.test_orchestration import register
from tests.pgcluster import PgCluster, missing_binaries, throwaway_cluster
from tests.processes import ForkedProcess
from tests.servers import (
    REQUESTER_SCOPES,
    ServerProcess,
    free_port,
    new_key,
    probe,
    start_server,
    start_worker,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL leg only (a cluster restarted)"),
]

DOWN_SECONDS = 3.0  # how long the database stays down
PROXY_DELAY = 0.5  # every call to the old payer held this long
NEW_NPI = "1234567893"
ASYNC = {"Content-Type": "application/fhir+json", "Prefer": "respond-async"}
ENDS = {"completed", "partial", "conflict", "failed", "blocked", "dead_lettered"}
# Scaled as tests/e2e/test_partner_outage.py scales them: the old payer answers 503 while
# its database is down, and the new payer tries again within a second.
NEW_SETTINGS = {
    "PAYERBRIDGE_ORG_NPI": NEW_NPI,
    "PAYERBRIDGE_BREAKER_FAILURE_THRESHOLD": "3",
    "PAYERBRIDGE_BREAKER_COOLDOWN_SECONDS": "1",
    "PAYERBRIDGE_RETRY_BASE_DELAY_SECONDS": "0.05",
    "PAYERBRIDGE_RETRY_MAX_DELAY_SECONDS": "0.5",
    "PAYERBRIDGE_RETRY_LONGEST_DELAY_SECONDS": "1",
    "PAYERBRIDGE_PARTNER_TIMEOUT_SECONDS": "10",
}
EXCHANGES, ONBOARDED, EXPORTED = range(0, 6), range(6, 10), range(10, 14)


@dataclass
class Payers:
    cluster: PgCluster
    network: Path
    new: ServerProcess
    old: ServerProcess
    worker: ForkedProcess  # the new payer's second worker, without HTTP
    calls: Path  # the proxy's log of what the old payer's address received
    proxied: str  # the old payer's address for the new one: the proxy's

    def direct(self, url: str) -> str:
        """One of the old payer's URLs, reached without the proxy's delay (our own reads)."""
        return url.replace(self.proxied, self.old.base_url)

    def switchers(self, which: range) -> list[dict[str, Any]]:
        found = orjson.loads((self.network / "switchers.json").read_bytes())
        return [{**found[i]["request"], "old_payer": "old"} for i in which]


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    if (why := missing_binaries()) is not None:
        pytest.skip(why)
    with throwaway_cluster() as found:
        yield found


@pytest.fixture(scope="module")
def payers(cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Payers]:
    network = tmp_path_factory.mktemp("network")
    write_network(network, 1, 40, 13, date.today() - timedelta(days=1), switchers=len(range(14)))
    info = orjson.loads((network / "network.json").read_bytes())["payers"][0]
    root = tmp_path_factory.mktemp("payers")
    small_pool = {"PAYERBRIDGE_DATABASE_MAX_CONNECTIONS": "4"}
    port = free_port()
    proxied = f"http://127.0.0.1:{port}"
    old = start_server(
        root / "old",
        env={
            **small_pool,
            # Its address for us is the proxy's: the status and file URLs it hands out too.
            "PAYERBRIDGE_PUBLIC_BASE_URL": proxied,
            "PAYERBRIDGE_DATABASE_URL": cluster.create_database("old"),
            "PAYERBRIDGE_ORG_NAME": info["name"],
            "PAYERBRIDGE_ORG_NPI": info["npi"],
            "PAYERBRIDGE_BULK_CHUNK_MEMBERS": "1",  # the export commits member by member
            # Its export taken up a second after it is asked, not a quarter: once the
            # suite's processes started faster, the four members' export had ended before
            # the database went away, and there was nothing in flight to carry through.
            "PAYERBRIDGE_BULK_QUEUE_POLLING_SECONDS": "1",
        },
        import_files=[network / info["file"]],
    )
    new = start_server(
        root / "new",
        env={
            **small_pool,
            **NEW_SETTINGS,
            "PAYERBRIDGE_DATABASE_URL": cluster.create_database("new"),
        },
        import_files=[],
    )
    worker = start_worker(
        root / "new", env=new.env, worker_id="second", log_path=root / "new" / "worker.log"
    )
    calls = root / "calls.jsonl"
    proxy = subprocess.Popen(
        [sys.executable, "-m", "tests.faultproxy", "--port", str(port)]
        + ["--upstream", old.base_url, "--log", str(calls), "--delay", str(PROXY_DELAY)],
        stderr=subprocess.DEVNULL,
    )
    try:
        old.trust(new, "newplan", npi=NEW_NPI)
        _wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 20, "the proxy")
        with new.client() as client:
            register(client, "old", f"{proxied}/fhir", info["npi"], "newplan")
        yield Payers(cluster, network, new, old, worker, calls, proxied)
    finally:
        proxy.terminate()
        worker.terminate()
        for process in (new, old):
            process.begin_stop()
        for process in (new, old):
            process.stop()
        proxy.wait(10)
        worker.wait(15)


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
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def _bulk_done(client: httpx.Client, status_url: str, timeout: float) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        polled = client.get(status_url)
        assert polled.status_code in (200, 202), polled.text
        return dict(polled.json()) if polled.status_code == 200 else None

    return _wait_for(done, timeout, "the bulk job")  # type: ignore[no-any-return]


def _member_bundles(payers: Payers) -> dict[str, Any]:
    """The ``$bulk-member-match`` Parameters a requester sends the old payer for the
    members ``EXPORTED`` names, as a new payer would."""
    old_npi = payers.old.env["PAYERBRIDGE_ORG_NPI"]
    bundles = []
    for n, request in enumerate(payers.switchers(EXPORTED)):
        single = member_match_parameters(request, our_npi=NEW_NPI, partner_npi=old_npi)
        text = orjson.dumps(single).decode().replace('"Patient/1"', f'"Patient/sub-{n}"')
        parts = orjson.loads(text)["parameter"]
        for part in parts:
            if part["resource"]["resourceType"] == "Patient":
                part["resource"]["id"] = f"sub-{n}"
        bundles.append({"name": "MemberBundle", "part": parts})
    return {"resourceType": "Parameters", "parameter": bundles}


def _lines(payers: Payers, client: httpx.Client, manifest: dict[str, Any]) -> Counter[str]:
    """Each exported resource (type/id) and how many times the files hold it."""
    found: Counter[str] = Counter()
    for entry in manifest["output"]:
        answer = client.get(
            payers.direct(entry["url"]), headers={"Accept": "application/fhir+ndjson"}
        )
        assert answer.status_code == 200, answer.text
        lines = [orjson.loads(line) for line in answer.content.splitlines() if line]
        assert len(lines) == entry["count"], entry
        found.update(f"{r['resourceType']}/{r['id']}" for r in lines)
    return found


def _without_ours(lines: Counter[str]) -> set[str]:
    """The old payer's records among an export's lines, without the Provenance it authors
    for each job (new ids each time)."""
    return {ref for ref in lines if not ref.startswith("Provenance/")}


def _engine(process: ServerProcess) -> Engine:
    url = process.env["PAYERBRIDGE_DATABASE_URL"]
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://"))


def _imported(new: ServerProcess, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """What the new payer stored from the old one, by source (``exchange:<id>``, ...)."""
    from payerbridge.store.members import opened_resource

    found: dict[str, list[dict[str, Any]]] = {}
    with new.platform() as platform, platform.engine.connect() as connection:
        rows = connection.execute(
            select(fhir_resources.c.source, fhir_resources.c.ref, fhir_resources.c.body).where(
                fhir_resources.c.source.like(f"{prefix}%")
            )
        ).all()
        for row in rows:
            found.setdefault(row.source, []).append(opened_resource(connection, row.ref, row.body))
    return found


def _side_effects(old: ServerProcess) -> Counter[tuple[str, str]]:
    """(action, Idempotency-Key) → how many audited side effects the old payer recorded."""
    engine = _engine(old)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(audit_events.c.action, audit_events.c.detail)).all()
    finally:
        engine.dispose()
    effects: Counter[tuple[str, str]] = Counter()
    for action, detail in rows:
        key = json.loads(detail or "{}").get("idempotency_key")
        if key:
            effects[(action, key)] += 1
    return effects


def _once_each(resources: list[dict[str, Any]]) -> Counter[str]:
    """The old payer's resources among ``resources`` (by ``meta.source``) seen more than once."""
    sources = Counter(r["meta"]["source"] for r in resources if "source" in r.get("meta", {}))
    return Counter({source: n for source, n in sources.items() if n > 1})


def _all_ended(client: httpx.Client, locations: list[str]) -> list[dict[str, Any]] | None:
    found = [client.get(location).json() for location in locations]
    return found if all(e["state"] in ENDS for e in found) else None


def _onboarding_ended(client: httpx.Client, kicked_off: httpx.Response) -> dict[str, Any] | None:
    report: dict[str, Any] = client.get(kicked_off.headers["Location"]).json()
    return report if report["status"] != "running" else None


def _transient(answer: httpx.Response) -> bool:
    """A 503 the caller can act on: Retry-After and an OperationOutcome ``transient``."""
    if answer.status_code != 503 or "retry-after" not in answer.headers:
        return False
    body = answer.json()
    return body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "transient"


def test_work_in_flight_through_a_database_restart_finishes_once_each(payers: Payers) -> None:
    new, old = payers.new, payers.old
    exporter = old.register_client("exporter", npi=NEW_NPI, scope=REQUESTER_SCOPES)
    with new.client() as client, old.client_with(exporter) as requester:
        # Before: a MatchedMembers Group on the old payer, for the export we ask for later.
        matched = requester.post(
            "/fhir/Group/$bulk-member-match", json=_member_bundles(payers), headers=ASYNC
        )
        assert matched.status_code == 202, matched.text
        manifest = _bulk_done(requester, payers.direct(matched.headers["Content-Location"]), 60)
        group_file = requester.get(payers.direct(manifest["output"][0]["url"]))
        group = orjson.loads(group_file.content.splitlines()[0])
        assert len(group["member"]) == len(EXPORTED), group

        # In flight: exchanges and an onboarding talking to the slow old payer, an export.
        exchanges = []
        for request in payers.switchers(EXCHANGES):
            submitted = client.post("/exchanges", json=request, headers=new_key())
            assert submitted.status_code == 202, submitted.text
            exchanges.append(submitted.headers["location"])
        members = [
            {k: v for k, v in m.items() if k != "old_payer"} for m in payers.switchers(ONBOARDED)
        ]
        onboarding = client.post(
            "/onboardings", json={"partner": "old", "members": members}, headers=new_key()
        )
        assert onboarding.status_code == 202, onboarding.text
        export = requester.post(f"/fhir/Group/{group['id']}/$davinci-data-export", headers=ASYNC)
        assert export.status_code == 202, export.text
        export_status = payers.direct(export.headers["Content-Location"])
        assert requester.get(export_status).status_code == 202  # the export is in flight
        before = [client.get(location).json()["state"] for location in exchanges]
        assert not set(before) & ENDS, before
        running = client.get(onboarding.headers["Location"]).json()
        assert running["status"] == "running", running

        payers.cluster.stop()
        stopped = time.monotonic()
        # Asked while the database is down: 503 transient with Retry-After, on both sides.
        while_down = [
            client.get(exchanges[0]),
            client.get(onboarding.headers["Location"]),
            client.post("/exchanges", json=payers.switchers(EXCHANGES)[0], headers=new_key()),
            requester.get(export_status),
            client.get("/healthz"),  # not ready: the database is away
        ]
        assert all(_transient(answer) for answer in while_down), [
            (a.status_code, a.headers.get("retry-after"), a.text[:300]) for a in while_down
        ]
        alive = client.get("/livez")  # alive all the same: nothing to restart
        assert alive.status_code == 200 and alive.json()["status"] == "alive", alive.text
        time.sleep(max(DOWN_SECONDS - (time.monotonic() - stopped), 0))
        payers.cluster.start()

        # After: everything ends, by itself: each exchange at its next retry, backed off
        # while the database was away (a loaded CI machine, seven test workers on two
        # cores, once took over 90 s; alone it takes under 10).
        ended = _wait_for(lambda: _all_ended(client, exchanges), 150, "the exchanges")
        report = _wait_for(lambda: _onboarding_ended(client, onboarding), 90, "the onboarding")
        exported = _bulk_done(requester, export_status, 60)
        listed = client.get("/exchanges", params={"_count": 100}).json()
        onboarded = client.get(f"{onboarding.headers['Location']}/members").json()["items"]
        exported_lines = _lines(payers, requester, exported)
        rerun = requester.post(f"/fhir/Group/{group['id']}/$davinci-data-export", headers=ASYNC)
        again = _bulk_done(requester, payers.direct(rerun.headers["Content-Location"]), 60)
        reference_lines = _lines(payers, requester, again)

    # Exchanges: each once, each member's history imported once.
    assert listed["total"] == len(exchanges), listed
    by_exchange = _imported(new, "exchange:")
    assert set(by_exchange) == {f"exchange:{e['id']}" for e in ended}, by_exchange.keys()
    for source, resources in by_exchange.items():
        patients = [r for r in resources if r["resourceType"] == "Patient"]
        # The old payer's, and ours for the member, which it points to (ADR 0054).
        assert sorted(is_member_record(p) for p in patients) == [False, True], source
        assert not _once_each(resources), (source, _once_each(resources))
    # The onboarding: completed, each member once, each history imported once.
    assert report["status"] == "completed", report
    assert sorted(i["member_id"] for i in onboarded) == sorted(
        m["new_coverage"]["member_id"] for m in members
    ), onboarded
    assert report["results"]["match"] == report["imported_members"] == len(members), report
    by_onboarding = [r for found in _imported(new, "onboarding:").values() for r in found]
    patients = [r for r in by_onboarding if r["resourceType"] == "Patient"]
    # Each member's old payer's Patient, and ours for the member it points to (ADR 0054).
    assert sum(1 for p in patients if not is_member_record(p)) == len(members)
    assert sum(1 for p in patients if is_member_record(p)) == len(members)
    assert not _once_each(by_onboarding), _once_each(by_onboarding)
    # The export: every line once, the same lines as an export run with nothing restarted.
    assert max(exported_lines.values()) == 1, exported_lines
    # (each job authors its own transmitter Provenance, under new ids: those are counted)
    assert _without_ours(exported_lines) == _without_ours(reference_lines)
    assert exported_lines.total() == reference_lines.total()
    assert sum(1 for ref in exported_lines if ref.startswith("Patient/")) == len(EXPORTED)
    # The old payer did each side effect once per Idempotency-Key, however often asked.
    effects = _side_effects(old)
    assert effects and max(effects.values()) == 1, {k: n for k, n in effects.items() if n > 1}
    # And no process gave up: both servers and the worker are still running.
    assert [p.poll() for p in (new.process, old.process, payers.worker)] == [None] * 3
