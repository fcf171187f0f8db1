"""Periodic upkeep as DBOS scheduled workflows. Each tick runs once across every worker
(DBOS names the run after the tick) on whichever worker takes it from DBOS's queue;
a tick missed while no worker ran is not made up, the next one does the work.

- ``sweep`` (every ``upkeep_sweep_seconds``, 30 by default): enqueue exchanges recorded
  but never enqueued (their API process died in between; enqueueing an existing
  workflow id attaches to it), start
  the workflows of overdue webhook deliveries likewise, and purge stored
  Idempotency-Key answers past their retention; enqueue bulk jobs accepted but never
  enqueued, and drop expired bulk jobs and Groups; apply the retention classes (raw
  payloads, ended requests; ADR 0038); start the scheduled pulls that are due (their
  exchanges are enqueued by the next sweep; ADR 0040); probe the partner endpoints whose
  open breaker's probe is due and that no parked exchange has probed (ADR 0047), so a
  breaker closes when its partner is back even with nothing waiting on it; check the
  partners nothing was sent to for ``partner_check_seconds`` (their capabilities and
  token endpoint), so an idle partner's health is known; read again the
  davinci-configuration of the partners whose endpoints came from one, once their last
  reading is ``wellknown_refresh_hours`` old (in the sweep at the top of each hour, so a
  document that fails is tried hourly, not every sweep; ADR 0061).
- ``audit_checkpoint`` (every 15 s): sign the audit chain's checkpoints that are due
  (ADR 0007), then write the event of each window of refused calls that has ended and
  that no refused call has closed since (ADR 0045; signed at the next tick).

Scheduled workflows are module-level functions (DBOS cannot schedule a configured
instance's methods), so bootstrap binds the use cases they run with ``bind``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dbos import DBOS

from payerbridge.audit.model import Checkpoint
from payerbridge.types import BulkJobId, ClientId
from payerbridge.workflows import destinations
from payerbridge.workflows.bulk import enqueue_job
from payerbridge.workflows.exchange import Due, enqueue_exchange
from payerbridge.workflows.webhooks import enqueue_deliveries

__all__ = ["AUDIT_CHECKPOINT_SCHEDULE", "Upkeep", "bind", "schedule", "sweep_schedule"]

logger = logging.getLogger(__name__)

# Often enough that a checkpoint at every N events follows soon after the Nth; the
# configured interval decides when the head itself is signed.
AUDIT_CHECKPOINT_SCHEDULE = "*/15 * * * * *"


@dataclass(frozen=True)
class Upkeep:
    """The use cases the scheduled workflows run, wired by bootstrap."""

    sign_checkpoints: Callable[[], list[Checkpoint]]
    unstarted_exchanges: Callable[[], list[Due]]
    overdue_deliveries: Callable[[], list[str]]
    purge_idempotent_answers: Callable[[], int]
    forget_spent_assertions: Callable[[], int]
    purge_disclosure_snapshots: Callable[[], int]
    unstarted_bulk_jobs: Callable[[], list[tuple[BulkJobId, ClientId]]]
    purge_bulk_jobs: Callable[[], int]
    apply_retention: Callable[[], dict[str, int]]
    start_due_pulls: Callable[[], dict[str, int]] = dict  # the scheduled pulls (ADR 0040)
    close_refusal_windows: Callable[[], int] = int  # refused calls' windows (ADR 0045)
    probe_breakers: Callable[[], int] = int  # open breakers due for their probe (ADR 0047)
    check_partners: Callable[[], int] = int  # quiet partners' scheduled checks (ADR 0047)
    # Deliveries to the plan's FHIR server whose workflow never started (ADR 0053).
    overdue_destination_deliveries: Callable[[], list[str]] = list
    # Partners' davinci-configuration read again when due (ADR 0061).
    refresh_wellknown: Callable[[], dict[str, int]] = dict


_upkeep: Upkeep | None = None


def bind(upkeep: Upkeep) -> None:
    """Called by bootstrap before the schedules are applied."""
    global _upkeep
    _upkeep = upkeep


def _bound() -> Upkeep:
    if _upkeep is None:
        raise RuntimeError("workflows.maintenance.bind was not called")
    return _upkeep


@DBOS.step()
def sign_due_checkpoints() -> int:
    return len(_bound().sign_checkpoints())


@DBOS.step()
def close_refusal_windows() -> int:
    return _bound().close_refusal_windows()


@DBOS.workflow()
def audit_checkpoint(scheduled_at: datetime, context: Any) -> None:
    sign_due_checkpoints()
    # After the signing: a step added after a released workflow's steps, never before.
    close_refusal_windows()


@DBOS.step()
def find_unstarted_exchanges() -> list[Due]:
    return _bound().unstarted_exchanges()


@DBOS.step()
def find_overdue_deliveries() -> list[str]:
    return _bound().overdue_deliveries()


@DBOS.step()
def purge_idempotent_answers() -> int:
    return _bound().purge_idempotent_answers()


@DBOS.step()
def forget_spent_assertions() -> int:
    return _bound().forget_spent_assertions()


@DBOS.step()
def purge_disclosure_snapshots() -> int:
    return _bound().purge_disclosure_snapshots()


@DBOS.step()
def find_unstarted_bulk_jobs() -> list[tuple[BulkJobId, ClientId]]:
    return _bound().unstarted_bulk_jobs()


@DBOS.step()
def purge_bulk_jobs() -> int:
    return _bound().purge_bulk_jobs()


@DBOS.step()
def apply_retention() -> dict[str, int]:
    return _bound().apply_retention()


@DBOS.step()
def start_due_pulls() -> dict[str, int]:
    return _bound().start_due_pulls()


@DBOS.step()
def probe_breakers() -> int:
    return _bound().probe_breakers()


@DBOS.step()
def check_partners() -> int:
    return _bound().check_partners()


@DBOS.step()
def find_overdue_destination_deliveries() -> list[str]:
    return _bound().overdue_destination_deliveries()


@DBOS.step()
def refresh_wellknown() -> dict[str, int]:
    return _bound().refresh_wellknown()


@DBOS.workflow()
def sweep(scheduled_at: datetime, context: Any) -> None:
    unstarted = find_unstarted_exchanges()
    # Runs recorded before review rounds existed carry three-item tuples.
    for exchange_id, partner_id, replay_count, *review in unstarted:
        round_ = review[0] if review else 0
        enqueue_exchange(exchange_id, partner_id, replay_count=replay_count, review_round=round_)
    if unstarted:
        logger.info("exchange sweep enqueued", extra={"exchanges": len(unstarted)})
    overdue = find_overdue_deliveries()
    enqueue_deliveries(overdue)
    if overdue:
        logger.info("webhook sweep enqueued", extra={"deliveries": len(overdue)})
    purged = purge_idempotent_answers()
    if purged:
        logger.info("idempotent answers purged", extra={"answers": purged})
    # Last: a step appended to the released workflow, so runs in flight replay as before.
    forgotten = forget_spent_assertions()
    if forgotten:
        logger.info("expired client assertions forgotten", extra={"assertions": forgotten})
    expired = purge_disclosure_snapshots()
    if expired:
        logger.info("expired $everything pages dropped", extra={"snapshots": expired})
    jobs = find_unstarted_bulk_jobs()
    for job_id, client_id in jobs:
        enqueue_job(job_id, client_id)
    if jobs:
        logger.info("bulk sweep enqueued", extra={"jobs": len(jobs)})
    dropped = purge_bulk_jobs()
    if dropped:
        logger.info("expired bulk jobs dropped", extra={"jobs": dropped})
    applied = apply_retention()
    if any(applied.values()):
        logger.info("retention applied", extra=applied)
    pulled = start_due_pulls()
    if any(pulled.values()):
        logger.info("scheduled pulls run", extra=pulled)
    # Last: appended to the released workflow (ADR 0047).
    probed = probe_breakers()
    if probed:
        logger.info("partner breakers probed", extra={"endpoints": probed})
    # Last: appended to the released workflow.
    checked = check_partners()
    if checked:
        logger.info("quiet partners checked", extra={"partners": checked})
    # Last: appended to the released workflow (ADR 0053).
    late = find_overdue_destination_deliveries()
    if late:
        destinations.enqueue_deliveries(late, None)
        logger.info("destination sweep enqueued", extra={"deliveries": len(late)})
    # Last: appended to the released workflow (ADR 0061).
    read = refresh_wellknown()
    if any(read.values()):
        logger.info("partners' davinci-configuration read again", extra=read)


def sweep_schedule(seconds: int) -> str:
    """The sweep's cron (with seconds): every ``seconds`` of each minute."""
    if not 1 <= seconds <= 60 or 60 % seconds:
        raise ValueError(f"the sweep's interval must divide 60 seconds, not {seconds}")
    return f"*/{seconds} * * * * *" if seconds < 60 else "0 * * * * *"


def schedule(*, sweep_seconds: int = 30) -> None:
    """Create or replace the schedules (idempotent; every worker may call it)."""
    DBOS.apply_schedules(
        [
            {
                "schedule_name": "audit-checkpoint",
                "workflow_fn": audit_checkpoint,
                "schedule": AUDIT_CHECKPOINT_SCHEDULE,
            },
            {
                "schedule_name": "sweep",
                "workflow_fn": sweep,
                "schedule": sweep_schedule(sweep_seconds),
            },
        ]
    )
