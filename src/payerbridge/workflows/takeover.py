"""A dead worker's workflows taken over by a survivor, as a DBOS scheduled workflow
(ADR 0049).

Each process that runs workflows beats every ``worker_heartbeat_seconds``
(``wiring.workers``); on the same interval a tick of ``worker_takeover`` runs once
across every worker (DBOS names the run after the tick), on whichever process takes it
from DBOS's queue. Its step claims each worker whose beat is stale and hands the
workflows DBOS has as running on it back to their queues (``oversight.workers``). A tick
cut off by its own worker's death runs again elsewhere: a claim already made is gone,
and handing a workflow back twice is a no-op in DBOS.

Scheduled workflows are module-level functions, so bootstrap binds the use case with
``bind``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from dbos import DBOS

from payerbridge.oversight.workers import Takeover
from payerbridge.workflows.maintenance import sweep_schedule

__all__ = ["bind", "schedule", "worker_takeover"]

_take_over: Callable[[], list[Takeover]] | None = None


def bind(take_over: Callable[[], list[Takeover]] | None) -> None:
    """Called by bootstrap before the schedule is applied."""
    global _take_over
    _take_over = take_over


@DBOS.step()
def take_over_dead_workers() -> list[str]:
    if _take_over is None:
        raise RuntimeError("workflows.takeover.bind was not called")
    return [takeover.worker_id for takeover in _take_over()]


@DBOS.workflow()
def worker_takeover(scheduled_at: datetime, context: Any) -> None:
    take_over_dead_workers()


def schedule(*, seconds: int) -> None:
    """Create or replace the schedule (idempotent; every worker may call it)."""
    DBOS.apply_schedules(
        [
            {
                "schedule_name": "worker-takeover",
                "workflow_fn": worker_takeover,
                "schedule": sweep_schedule(seconds),
            }
        ]
    )
