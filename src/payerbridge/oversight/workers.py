"""Which workers are gone, and their work taken over by a survivor (ADR 0049).

Every process that runs workflows writes a heartbeat (its worker id, its version, when it
last beat). A worker whose last beat is older than the staleness is dead: a survivor
claims it (one claim per death, under the heartbeat row's lock) and hands the workflows
DBOS still has as running on it back to their queues, where any live worker takes them.

The decision (``dead_workers``) is pure: heartbeats, the judge's own id and version, now,
the staleness and since when the judge's own beats have been getting through. A judge
whose own beats failed lately (the database was away) judges nobody until the others
have had a staleness to beat again: after an outage every beat is old, and none of those
workers is dead. The claim and the recovery are ports, on a ``WorkersUnit``;
``take_over_dead_workers(command, uow)`` is the use case each process runs after its
beat.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from payerbridge.oversight.model import Heartbeat
from payerbridge.transactions import RoomUnit, Transactions, UnitOfWork
from payerbridge.types import WorkerId

__all__ = [
    "Heartbeats",
    "TakeOverDeadWorkers",
    "Takeover",
    "WorkersUnit",
    "WorkflowRecovery",
    "dead_workers",
    "is_stale",
    "take_over_dead_workers",
]

logger = logging.getLogger(__name__)


def is_stale(beat_at: datetime, *, now: datetime, stale_after: timedelta) -> bool:
    """Whether a beat at ``beat_at`` is too old, at ``now``, for its worker to be alive."""
    return beat_at < now - stale_after


def dead_workers(
    heartbeats: Iterable[Heartbeat],
    *,
    judge: Heartbeat,
    stale_after: timedelta,
    watching_since: datetime | None,
) -> list[WorkerId]:
    """The workers ``judge`` (a worker, beating now: ``judge.beat_at``) may take over:
    each other worker of its version whose latest beat is stale, once each, oldest beat
    first. None while the judge's own beats have got through for less than
    ``stale_after`` (``watching_since``: the first of its unbroken run of beats; None:
    its last beat failed)."""
    me, version, now = judge.worker_id, judge.version, judge.beat_at
    if watching_since is None or now - watching_since < stale_after:
        return []
    latest: dict[WorkerId, Heartbeat] = {}
    for beat in heartbeats:
        known = latest.get(beat.worker_id)
        if known is None or beat.beat_at > known.beat_at:
            latest[beat.worker_id] = beat
    dead = [
        beat
        for beat in latest.values()
        if beat.worker_id != me
        and beat.version == version
        and is_stale(beat.beat_at, now=now, stale_after=stale_after)
    ]
    return [beat.worker_id for beat in sorted(dead, key=lambda b: (b.beat_at, b.worker_id))]


class Heartbeats(Protocol):
    """Where the workers' heartbeats are kept."""

    def beat(self, unit: UnitOfWork, worker_id: WorkerId, *, version: str) -> None:
        """Record that ``worker_id`` is alive as of ``unit.now``."""
        ...

    def all(self) -> list[Heartbeat]: ...

    def claim(self, unit: UnitOfWork, worker_id: WorkerId, *, stale_before: datetime) -> bool:
        """Take the dead worker's heartbeat away, its row held until ``unit`` ends: False
        when it beat again since ``stale_before`` or another survivor holds or took it."""
        ...


class WorkflowRecovery(Protocol):
    """Hands a dead worker's unfinished workflows back to their queues."""

    def recover(self, worker_id: WorkerId) -> list[str]:
        """The ids of the workflows handed back."""
        ...


@dataclass
class WorkersUnit(RoomUnit):
    """The takeover's unit of work (ADR 0051): the heartbeats, a claim held until the
    unit ends, and the recovery that hands a dead worker's workflows back meanwhile."""

    transactions: Transactions
    heartbeats: Heartbeats
    recovery: WorkflowRecovery


@dataclass(frozen=True)
class TakeOverDeadWorkers:
    """``judge`` (``judge.beat_at``: now) looks for dead workers; see ``dead_workers``."""

    judge: Heartbeat
    stale_after: timedelta
    watching_since: datetime | None


@dataclass(frozen=True)
class Takeover:
    """A dead worker taken over: whose, by whom, and the workflows handed back."""

    worker_id: WorkerId
    by: WorkerId
    workflow_ids: tuple[str, ...]


def take_over_dead_workers(command: TakeOverDeadWorkers, uow: WorkersUnit) -> list[Takeover]:
    """Claim each worker ``judge`` finds dead (``judge.beat_at``: now) and hand its
    workflows back, while its heartbeat row is held: a second survivor skips it, and the
    worker itself, restarting with the same id, writes its first beat (and then recovers
    what is still its own) only once the workflows are no longer assigned to it."""
    judge, stale_after = command.judge, command.stale_after
    found = dead_workers(
        uow.heartbeats.all(),
        judge=judge,
        stale_after=stale_after,
        watching_since=command.watching_since,
    )
    taken: list[Takeover] = []
    for worker_id in found:
        with uow:
            if not uow.heartbeats.claim(uow, worker_id, stale_before=uow.now - stale_after):
                continue
            workflow_ids = tuple(uow.recovery.recover(worker_id))
        taken.append(Takeover(worker_id, judge.worker_id, workflow_ids))
        # A warning when it left work; info for one that left none (a CLI command's).
        logger.log(
            logging.WARNING if workflow_ids else logging.INFO,
            "dead worker taken over",
            extra={
                "worker_id": worker_id,
                "taken_over_by": judge.worker_id,
                "workflows": len(workflow_ids),
                "workflow_ids": list(workflow_ids[:50]),
            },
        )
    return taken
