"""This process's heartbeat, and its part in taking dead workers over (ADR 0049).

Every process that launches DBOS beats: once before DBOS recovers its own workflows at
launch, then every ``worker_heartbeat_seconds`` from a thread of its own. The first beat
comes first so that a worker back with the id of one a survivor is taking over waits for
the takeover to commit (its row is held), then finds its old workflows no longer
assigned to it. After each beat the same thread looks for dead workers and takes them
over (``oversight.workers``, with the SQL heartbeats and DBOS's recovery: the call behind
DBOS's admin endpoint ``/dbos-workflow-recovery`` and ``payerbridge workers recover``).
Every process looks; the claim under the dead worker's row lets one of them take it. A
DBOS schedule would run the look once per tick across all processes, but as a workflow
run of its own every interval, idle or not (ADR 0050).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from payerbridge import __version__
from payerbridge.errors import PayerBridgeError
from payerbridge.metrics import record_worker_recovery
from payerbridge.oversight.model import Heartbeat
from payerbridge.oversight.workers import (
    Takeover,
    TakeOverDeadWorkers,
    WorkersUnit,
    take_over_dead_workers,
)
from payerbridge.store.workers import SqlWorkerHeartbeats
from payerbridge.transactions import Transactions
from payerbridge.types import WorkerId
from payerbridge.wiring.platform import Platform, utcnow

__all__ = ["DbosRecovery", "HeartbeatWriter", "beat_before_launch", "stop_heartbeats"]

logger = logging.getLogger(__name__)


class HeartbeatWriter:
    """Beats for ``worker_id`` every ``interval`` seconds from a daemon thread, then runs
    ``take_over``; knows since when its beats have been getting through
    (``watching_since``; None after a beat that failed)."""

    def __init__(
        self,
        heartbeats: SqlWorkerHeartbeats,
        transactions: Transactions,
        *,
        worker_id: WorkerId,
        interval: float,
    ) -> None:
        self.heartbeats = heartbeats
        self.worker_id = worker_id
        self._transactions = transactions
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.watching_since: datetime | None = None

    def beat(self) -> None:
        try:
            with self._transactions.begin() as unit:
                self.heartbeats.beat(unit, self.worker_id, version=__version__)
                at = unit.now
        except PayerBridgeError as exc:  # the database did not answer: the next beat
            self.watching_since = None
            logger.warning(
                "worker heartbeat failed",
                extra={"worker_id": self.worker_id, "error_type": type(exc).__name__},
            )
            return
        if self.watching_since is None:
            self.watching_since = at

    def start(self, take_over: Callable[[HeartbeatWriter], list[Takeover]]) -> None:
        """Beat, then look for dead workers, every interval from now on."""
        self._thread = threading.Thread(
            target=self._run, args=(take_over,), name="payerbridge-heartbeat", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self, take_over: Callable[[HeartbeatWriter], list[Takeover]]) -> None:
        while not self._stop.wait(self._interval):
            self.beat()
            if self.watching_since is None:
                continue
            try:
                take_over(self)
            except Exception as exc:  # noqa: BLE001 - the next interval looks again
                logger.warning(
                    "taking over dead workers failed",
                    extra={"worker_id": self.worker_id, "error_type": type(exc).__name__},
                )


class DbosRecovery:
    """``WorkflowRecovery`` by DBOS: the dead worker's PENDING workflows of this version
    back on their queues (those started off a queue on DBOS's internal one)."""

    def recover(self, worker_id: WorkerId) -> list[str]:
        from dbos import DBOS

        return [handle.workflow_id for handle in DBOS._recover_pending_workflows([worker_id])]


_writers: list[HeartbeatWriter] = []


def beat_before_launch(platform: Platform) -> Callable[[], None]:
    """Beat for this process now, before DBOS launches; the returned call, once it has,
    beats and looks for dead workers from then on."""
    settings = platform.settings
    writer = HeartbeatWriter(
        SqlWorkerHeartbeats(platform.reader),
        platform.transactions,
        worker_id=WorkerId(settings.worker_id),
        interval=settings.worker_heartbeat_seconds,
    )
    writer.beat()
    _writers.append(writer)
    stale_after = timedelta(seconds=settings.worker_stale_seconds)

    def take_over(writer: HeartbeatWriter) -> list[Takeover]:
        judge = Heartbeat(writer.worker_id, __version__, utcnow())
        command = TakeOverDeadWorkers(judge, stale_after, writer.watching_since)
        uow = WorkersUnit(platform.transactions, writer.heartbeats, DbosRecovery())
        taken = take_over_dead_workers(command, uow)
        for takeover in taken:
            record_worker_recovery(len(takeover.workflow_ids))
        return taken

    return lambda: writer.start(take_over)


def stop_heartbeats() -> None:
    """Stop this process's beats and looks (its row stays: work it leaves is taken over)."""
    while _writers:
        _writers.pop().close()
