"""A worker killed for good while it runs exchanges, with real processes on one
PostgreSQL database (issue 68, ADR 0049): the surviving workers take its workflows over
by themselves, each exchange completes once, and the worker that comes back with the same
id runs none of them again.

Three workers and an API-only process share the new payer's database; the old payer sits
behind a proxy that holds each call for a while, so exchanges are in flight when one
worker is SIGKILLed. Heartbeats every second and a staleness of three seconds stand in for
the defaults (10 s and 45 s). PostgreSQL only: several workers on one SQLite data dir are
not the deployment model (ADR 0049)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from payerbridge.store.tables import exchange_transitions
from payerbridge.store.worker_tables import worker_heartbeats
from payerbridge_tools.sandbox.generator import write_network
from tests.conftest import BACKEND
from tests.e2e.test_orchestration import (
    database_of,
    old_payer,
    partner_side_effects,
    register,
    requests_for,
    wait_all_stopped,
)
from tests.processes import ForkedProcess
from tests.servers import ServerProcess, new_key, start_worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(BACKEND != "postgres", reason="several workers share one PostgreSQL"),
]

STALE_SECONDS = 3
SETTINGS = {
    "PAYERBRIDGE_PARTNER_CONCURRENCY": "40",
    "PAYERBRIDGE_WORKER_HEARTBEAT_SECONDS": "1",
    "PAYERBRIDGE_WORKER_STALE_SECONDS": str(STALE_SECONDS),
}
EXCHANGES = 30
WORKERS = ("w1", "w2", "w3")


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("network")
    write_network(out, 1, 40, 11, date.today() - timedelta(days=1), switchers=EXCHANGES)
    return out


def pending_of(engine: Engine, worker_id: str) -> set[str]:
    """The exchange workflows DBOS has as running on ``worker_id``."""
    query = text(
        "SELECT workflow_uuid FROM dbos.workflow_status "
        "WHERE executor_id = :worker AND status = 'PENDING' AND queue_name = 'exchanges'"
    )
    with engine.connect() as connection:
        return {row[0] for row in connection.execute(query, {"worker": worker_id})}


def beating(engine: Engine) -> set[str]:
    """The workers with a heartbeat."""
    with engine.connect() as connection:
        return set(connection.execute(select(worker_heartbeats.c.worker_id)).scalars())


def runners_of(engine: Engine, workflow_ids: set[str]) -> dict[str, tuple[str, str]]:
    """Each workflow's status and the executor that holds it now."""
    query = text(
        "SELECT workflow_uuid, status, executor_id FROM dbos.workflow_status "
        "WHERE workflow_uuid = ANY(:ids)"
    )
    with engine.connect() as connection:
        rows = connection.execute(query, {"ids": list(workflow_ids)})
        return {row[0]: (row[1], row[2]) for row in rows}


def survivors_hold(engine: Engine, orphans: set[str], survivors: set[str]) -> bool:
    """Whether every one of the dead worker's workflows is taken by a survivor or over."""
    return all(
        status == "SUCCESS" or (status == "PENDING" and executor in survivors)
        for status, executor in runners_of(engine, orphans).values()
    )


def busiest(engine: Engine, worker_ids: tuple[str, ...]) -> str | None:
    """The worker holding the most exchanges in flight, once one holds three or more."""
    held = {worker_id: len(pending_of(engine, worker_id)) for worker_id in worker_ids}
    worker_id = max(held, key=held.__getitem__)
    return worker_id if held[worker_id] >= 3 else None


def repeated_moves(engine: Engine) -> dict[tuple[str, str], int]:
    """(exchange, state) moved into more than once: an import applied twice."""
    moves = exchange_transitions
    query = (
        select(moves.c.exchange_id, moves.c.to_state, func.count())
        .group_by(moves.c.exchange_id, moves.c.to_state)
        .having(func.count() > 1)
    )
    with engine.connect() as connection:
        return {(row[0], row[1]): row[2] for row in connection.execute(query)}


def wait_until(found: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := found():
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout} s")


@pytest.mark.timeout(240)
def test_survivors_take_over_a_killed_workers_exchanges_and_run_each_once(
    server: Callable[..., ServerProcess],
    network: Path,
    proxies: Callable[..., tuple[str, Path]],
) -> None:
    old = old_payer(server, network)
    slow_url, _ = proxies(old.base_url, delay=1.0)
    api = server("new", env=SETTINGS, args=("--no-workers",))
    old.trust(api, "newplan", npi="1234567893")  # the workers sign with the same key
    with api.client() as client:
        token_url = f"{old.base_url}/auth/token"  # another origin than the proxy's
        register(client, "slow", slow_url, old.env["PAYERBRIDGE_ORG_NPI"], "newplan", token_url)
    log_path = api.data_dir / "workers.log"
    workers: dict[str, ForkedProcess] = {}

    def start(worker_id: str) -> None:
        workers[worker_id] = start_worker(
            api.data_dir, env=api.env, worker_id=worker_id, log_path=log_path
        )

    engine = database_of(api)
    try:
        # All three up before the exchanges come: had two started after them, a loaded
        # machine took longer to bring them up than the first took to finish its share,
        # and there was nothing left to take over.
        for worker_id in WORKERS:
            start(worker_id)
        wait_until(lambda: beating(engine) >= set(WORKERS), 60, "the workers did not beat")
        with api.client() as client:
            for request in requests_for(network, "slow", EXCHANGES):
                response = client.post("/exchanges", json=request, headers=new_key())
                assert response.status_code == 202, response.text
            # One worker holds exchanges in flight (each call held a second): kill it.
            # Whichever does: which of the three the queue hands them to is a race a
            # loaded machine decides (w1 alone once got fewer than three).
            victim = str(wait_until(lambda: busiest(engine, WORKERS), 60, "none took three"))
            survivors = set(WORKERS) - {victim}
            orphans = pending_of(engine, victim)
            os.kill(workers[victim].pid, signal.SIGKILL)
            workers[victim].wait()
            killed_at = time.monotonic()
            # Taken over: none left on the victim, without anyone's help.
            wait_until(lambda: not pending_of(engine, victim), 30, "its workflows stayed on it")
            taken_over_after = time.monotonic() - killed_at
            wait_until(lambda: survivors_hold(engine, orphans, survivors), 30, "none taken over")
            start(victim)  # back with the same id (its host restarted): none run again
            items = wait_all_stopped(client, EXCHANGES, timeout=120)
        runners = runners_of(engine, orphans)
        repeated = repeated_moves(engine)
    finally:
        for process in workers.values():
            process.kill()
            process.wait()
        engine.dispose()

    assert Counter(i["state"] for i in items) == {"completed": EXCHANGES}
    assert taken_over_after < STALE_SECONDS + 10, taken_over_after
    assert {status for status, _ in runners.values()} == {"SUCCESS"}, runners
    assert {executor for _, executor in runners.values()} <= survivors, runners
    assert not repeated, repeated
    effects = partner_side_effects(old)
    twice = {key: n for key, n in effects.items() if n > 1}
    assert not twice, twice
    assert sum(1 for action, _ in effects if action == "member-match") == EXCHANGES
