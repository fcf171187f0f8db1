"""An idle process stays idle (ADR 0050) without dropping what its loops promise: the
queue gate lets DBOS's dequeue run exactly while a workflow waits, and the WAL
checkpointer, backed off while nothing is written, still copies back a later write."""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from payerbridge.store.engines import WalCheckpointer, create_db_engine, create_workflow_engine
from payerbridge.workflows.queue_gate import QueueGate


class _SystemDatabase:
    """The calls of DBOS's ``SystemDatabase`` the gate wraps, counted."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def dequeue_scopes(self, queue_name: str) -> list[str | None]:
        self.calls.append(f"scopes {queue_name}")
        return [None]

    def get_queue(self, name: str, **options: Any) -> object:
        self.calls.append(f"get_queue {name}")
        return f"config of {name}"

    def list_queues(self, **options: Any) -> list[str]:
        self.calls.append("list_queues")
        return ["exchanges"]

    @contextlib.contextmanager
    def background_job_lock(self, job_name: str) -> Iterator[bool]:
        self.calls.append(f"lock {job_name}")
        yield True


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    """A system database with the columns the gate's probes read (DBOS's own has more)."""
    engine = create_workflow_engine(f"sqlite:///{tmp_path / 'workflows.db'}")
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE workflow_status (workflow_uuid TEXT PRIMARY KEY, queue_name TEXT,"
                " status TEXT, workflow_deadline_epoch_ms INTEGER)"
            )
        )
    return engine


def _add(
    engine: Engine, workflow_id: str, queue: str, status: str, deadline: int | None = None
) -> None:
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO workflow_status VALUES (:id, :queue, :status, :deadline)"),
            {"id": workflow_id, "queue": queue, "status": status, "deadline": deadline},
        )


def test_a_poll_goes_through_exactly_while_a_workflow_waits_in_its_queue(engine: Engine) -> None:
    system = _SystemDatabase()
    QueueGate(engine, schema=None).install(system)
    assert system.dequeue_scopes("exchanges") == []  # nothing waits: no dequeue
    _add(engine, "done", "exchanges", "SUCCESS")
    _add(engine, "running", "exchanges", "PENDING")
    _add(engine, "elsewhere", "bulk", "ENQUEUED")
    assert system.dequeue_scopes("exchanges") == []
    assert system.calls == []
    _add(engine, "waiting", "exchanges", "ENQUEUED")  # by any process: seen at the next poll
    assert system.dequeue_scopes("exchanges") == [None]
    assert system.dequeue_scopes("bulk") == [None]
    assert system.calls == ["scopes exchanges", "scopes bulk"]


def _jobs_run(system: _SystemDatabase) -> bool:
    with system.background_job_lock("background_jobs") as acquired:
        return acquired


def test_the_background_jobs_run_only_with_delayed_or_deadlined_workflows(engine: Engine) -> None:
    system = _SystemDatabase()
    QueueGate(engine, schema=None).install(system)
    assert not _jobs_run(system)
    assert system.calls == []
    _add(engine, "later", "exchanges", "DELAYED")
    assert _jobs_run(system)
    assert system.calls == ["lock background_jobs"]
    with engine.begin() as connection:
        connection.execute(text("UPDATE workflow_status SET status = 'ENQUEUED'"))
    _add(engine, "bounded", "exchanges", "PENDING", deadline=1)
    assert _jobs_run(system)
    with engine.begin() as connection:
        connection.execute(text("UPDATE workflow_status SET status = 'SUCCESS'"))
    assert not _jobs_run(system)
    assert system.calls == ["lock background_jobs"] * 2


def test_the_configuration_is_read_again_after_config_seconds(engine: Engine) -> None:
    system = _SystemDatabase()
    now = [0.0]
    QueueGate(engine, schema=None, config_seconds=5, clock=lambda: now[0]).install(system)
    assert system.get_queue("exchanges") == "config of exchanges"
    now[0] = 4.9
    assert system.get_queue("exchanges") == "config of exchanges"
    assert system.list_queues(application_name="payerbridge") == ["exchanges"]
    assert system.list_queues(application_name="payerbridge") == ["exchanges"]
    assert system.calls == ["get_queue exchanges", "list_queues"]
    now[0] = 5.0
    system.get_queue("exchanges")
    system.get_queue("exchanges", client_system_database=object())  # a client's: as DBOS's
    assert system.calls[2:] == ["get_queue exchanges", "get_queue exchanges"]


def test_a_failing_probe_lets_the_poll_through(engine: Engine) -> None:
    system = _SystemDatabase()
    QueueGate(engine, schema="nowhere").install(system)  # no such table: the probe fails
    assert system.dequeue_scopes("exchanges") == [None]


def test_dbos_still_makes_the_calls_the_gate_answers() -> None:
    """The gate is held to DBOS 3.4.0's loops (pinned): an upgrade that renames these
    calls would leave the gate in place doing nothing, and idle processes busy again."""
    from dbos import _queue, _workflow_commands
    from dbos._sys_db_postgres import PostgresSystemDatabase
    from dbos._sys_db_sqlite import SQLiteSystemDatabase

    worker = inspect.getsource(_queue.queue_worker_thread)
    assert "dbos._sys_db.dequeue_scopes(queue.name)" in worker
    assert "dbos._sys_db.get_queue(queue.name)" in worker
    assert "dbos._sys_db.list_queues(" in inspect.getsource(_queue.queue_thread)
    jobs = inspect.getsource(_workflow_commands._run_background_jobs)
    assert "dbos._sys_db.background_job_lock(lock_name) as acquired" in jobs
    assert "if acquired:" in jobs
    for system in (SQLiteSystemDatabase, PostgresSystemDatabase):
        QueueGate(create_db_engine("sqlite://"), schema=None).install(object.__new__(system))
    with pytest.raises(RuntimeError, match="no dequeue_scopes"):
        QueueGate(create_db_engine("sqlite://"), schema=None).install(object())


def test_an_idle_checkpointer_still_copies_back_a_later_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER, pad TEXT)"))
    database = tmp_path / "db.sqlite"
    checkpointer = WalCheckpointer(interval=0.05, idle_interval=0.4)
    checkpointer.watch(url)
    try:
        time.sleep(1.0)  # nothing written: backed off to the idle interval
        before = database.stat().st_size
        with engine.begin() as connection:
            rows = [{"n": i, "pad": "x" * 2000} for i in range(500)]
            connection.execute(text("INSERT INTO t VALUES (:n, :pad)"), rows)
        # Until all of it is copied back: a loaded machine was seen mid-copy (196,608 bytes).
        deadline = time.monotonic() + 15
        while database.stat().st_size <= before + 500_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert database.stat().st_size > before + 500_000  # copied back by the thread
    finally:
        checkpointer.close()
        engine.dispose()
