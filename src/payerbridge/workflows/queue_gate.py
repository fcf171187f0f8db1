"""DBOS's background loops kept out of the system database while nothing waits (ADR 0050).

DBOS 3.4.0 gives each queue a thread that wakes every polling interval (0.25 s for ours,
1 s for its own) and runs a whole dequeue: it reads the queue's configuration back,
lists the partitions holding work and claims in a transaction, about a millisecond of
CPU each time through SQLAlchemy; another thread lists the queues every second, and a
third takes a lock (PostgreSQL) and runs its background jobs every second (DELAYED
workflows whose delay is over enqueued, workflows past their deadline cancelled). With
our four queues that was most of the 5-7 % of a core an idle ``serve`` or ``worker``
used. The gate answers some of those calls itself:

- ``dequeue_scopes`` (where to dequeue): nowhere while the queue holds no ENQUEUED
  workflow, as one probe on DBOS's in-flight index finds; the dequeue is skipped. A
  workflow waiting in the queue, claimable or not (a partner at its concurrency, a rate
  limit), lets every poll through as before;
- ``background_job_lock`` (before those jobs): not taken, so the jobs are skipped, while
  no workflow is DELAYED and none in flight has a deadline (we set neither; DBOS might);
- ``get_queue`` and ``list_queues`` (the configuration read back on every poll, the
  queues listed every second): read at most every ``config_seconds``; every process
  declares the same configuration at start-up.

A probe is one statement on a connection kept for it, on the raw driver: tens of
microseconds where SQLAlchemy's path costs hundreds from a cold cache. The loops still
wake as often as before, so a workflow enqueued by any process (this one, an API-only
one, DBOS's scheduler) starts as soon as it did. The gate wraps methods of DBOS's system
database, which ``dbos==3.4.0`` pins; ``install`` refuses a DBOS that lacks them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine

__all__ = ["QueueGate"]

logger = logging.getLogger(__name__)

_WRAPPED = ("dequeue_scopes", "get_queue", "list_queues", "background_job_lock")
# Each condition is written as DBOS's partial index's own, so SQLite's planner uses it.
_WAITING = "queue_name = ? AND status IN ('ENQUEUED', 'PENDING') AND status = 'ENQUEUED'"
_DELAYED = "status = 'DELAYED'"
_DEADLINED = (
    "status IN ('ENQUEUED', 'PENDING', 'DELAYED') AND workflow_deadline_epoch_ms IS NOT NULL"
)


class _Probe:
    """``SELECT 1 ... LIMIT 1`` statements on one connection of ``engine``'s, kept for
    them (autocommit) on the raw driver and opened again after an error."""

    def __init__(self, engine: Engine, table: str) -> None:
        self._engine = engine
        self._table = table
        self._qmark = engine.dialect.paramstyle == "qmark"
        self._connection: Any = None
        self._lock = threading.Lock()

    def finds(self, condition: str, *params: str) -> bool:
        """Whether a row meets ``condition`` (True when the probe fails: the caller's
        own statement then runs, and meets the error as it always has)."""
        sql = f"SELECT 1 FROM {self._table} WHERE {condition} LIMIT 1"
        if not self._qmark:
            sql = sql.replace("?", "%s")
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._engine.raw_connection()
                    driver = self._connection.driver_connection
                    if hasattr(driver, "autocommit"):
                        driver.autocommit = True  # no transaction left open between probes
                cursor = self._connection.cursor()
                try:
                    cursor.execute(sql, params)
                    return cursor.fetchone() is not None
                finally:
                    cursor.close()
            except Exception:  # noqa: BLE001 - see the docstring
                logger.debug("workflow probe failed", exc_info=True)
                if self._connection is not None:
                    self._connection.invalidate()
                    self._connection = None
                return True


class QueueGate:
    """DBOS's background loops held to what waits in its system database."""

    def __init__(
        self,
        engine: Engine,
        *,
        schema: str | None,
        config_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = _Probe(engine, f'"{schema}".workflow_status' if schema else "workflow_status")
        self._config_seconds = config_seconds
        self._clock = clock
        self._kept: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def has_waiting(self, queue_name: str) -> bool:
        """Whether a workflow waits (ENQUEUED) in the queue."""
        return self._probe.finds(_WAITING, queue_name)

    def has_timed_work(self) -> bool:
        """Whether a workflow is DELAYED, or one in flight has a deadline."""
        return self._probe.finds(_DELAYED) or self._probe.finds(_DEADLINED)

    def install(self, system_database: Any) -> None:
        """Wrap ``system_database``'s calls from DBOS's loops (a DBOS ``SystemDatabase``)."""
        missing = [name for name in _WRAPPED if not callable(getattr(system_database, name, None))]
        if missing:
            raise RuntimeError(f"DBOS's system database has no {', '.join(missing)}")
        scopes = system_database.dequeue_scopes
        job_lock = system_database.background_job_lock

        def gated_scopes(queue_name: str) -> list[str | None]:
            return list(scopes(queue_name)) if self.has_waiting(queue_name) else []

        @contextlib.contextmanager
        def gated_job_lock(job_name: str) -> Iterator[bool]:
            if not self.has_timed_work():
                yield False  # as if another process held it: the jobs wait a second
                return
            with job_lock(job_name) as acquired:
                yield acquired

        system_database.dequeue_scopes = gated_scopes
        system_database.background_job_lock = gated_job_lock
        system_database.get_queue = self._kept_for("get_queue", system_database.get_queue)
        system_database.list_queues = self._kept_for("list_queues", system_database.list_queues)

    def _kept_for(self, name: str, read: Callable[..., Any]) -> Callable[..., Any]:
        """``read`` answered from what it returned less than ``config_seconds`` ago, for
        the same arguments (a None, a queue that is gone, is never kept)."""

        def kept(*args: Any, **options: Any) -> Any:
            if "client_system_database" in options:  # a client's own lookup
                return read(*args, **options)
            key = (name, repr((args, sorted(options.items()))))
            now = self._clock()
            with self._lock:
                found = self._kept.get(key)
            if found is not None and now - found[0] < self._config_seconds:
                return found[1]
            value = read(*args, **options)
            with self._lock:
                if value is None:
                    self._kept.pop(key, None)
                else:
                    self._kept[key] = (now, value)
            return value

        return kept
