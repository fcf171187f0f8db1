"""Periodic upkeep as DBOS scheduled workflows: each tick runs once across every worker
(DBOS names its run after the tick), on whichever worker takes it from the queue.

- ``audit_checkpoint``: signs the audit chain's checkpoints that are due (ADR 0007).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from dbos import DBOS

from payerbridge.audit.checkpoints import Checkpoint

__all__ = ["AUDIT_CHECKPOINT_SCHEDULE", "audit_checkpoint", "bind_checkpointer", "schedule"]

logger = logging.getLogger(__name__)

# Often enough that a checkpoint at every N events follows soon after the Nth; the
# configured interval decides when the head itself is signed.
AUDIT_CHECKPOINT_SCHEDULE = "*/15 * * * * *"

_checkpointer: Callable[[], list[Checkpoint]] | None = None


def bind_checkpointer(checkpointer: Callable[[], list[Checkpoint]]) -> None:
    """Called by bootstrap before the schedule is applied (workflows are module-level)."""
    global _checkpointer
    _checkpointer = checkpointer


@DBOS.step()
def sign_due_checkpoints() -> int:
    if _checkpointer is None:
        raise RuntimeError("workflows.maintenance.bind_checkpointer was not called")
    return len(_checkpointer())


@DBOS.workflow()
def audit_checkpoint(scheduled_at: datetime, context: Any) -> None:
    signed = sign_due_checkpoints()
    if signed:
        logger.debug("audit checkpoints", extra={"signed": signed})


def schedule() -> None:
    """Create or replace the schedules (idempotent; every worker may call it)."""
    DBOS.apply_schedules(
        [
            {
                "schedule_name": "audit-checkpoint",
                "workflow_fn": audit_checkpoint,
                "schedule": AUDIT_CHECKPOINT_SCHEDULE,
            }
        ]
    )
