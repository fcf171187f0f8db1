"""Bulk jobs as DBOS workflows on one queue partitioned by client (ADR 0018).

A job's row is its checkpoint, as an exchange's is (ADR 0004): the workflow calls the
room's use case, which resumes from the row's cursor, so a run recovered on any worker
carries on after the last committed chunk. DBOS holds each client's concurrency limit
across every worker; the jobs run on their own queue, so the single-member API and the
exchanges never wait behind them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from dbos import DBOS, Queue, SetEnqueueOptions, SetWorkflowID

from payerbridge.bulk.jobs import run_job
from payerbridge.bulk.member_match import FailJob, fail_job
from payerbridge.bulk.unit import BulkUnit
from payerbridge.errors import StoreUnavailable
from payerbridge.tracing import continued, current_traceparent, span
from payerbridge.types import BulkJobId, ClientId
from payerbridge.workflows.steps import OnFailure, Progress, run_until_done

__all__ = ["BULK_QUEUE", "BulkQueueLimits", "bind", "bulk_job_workflow", "enqueue_job"]

logger = logging.getLogger(__name__)
BULK_QUEUE = "bulk"

_units: Callable[[], BulkUnit] | None = None
_queues: dict[str, Queue] = {}


def bind(units: Callable[[], BulkUnit]) -> None:
    """Called by bootstrap before DBOS launches (workflow functions are module-level):
    ``units`` hands out a fresh unit of work for each run."""
    global _units
    _units = units


def _new_unit() -> BulkUnit:
    if _units is None:
        raise RuntimeError("workflows.bulk.bind was not called")
    return _units()


@DBOS.step()
def fail_bulk_job_step(job_id: BulkJobId, error: str) -> None:
    fail_job(FailJob(job_id, error), _new_unit())


@DBOS.workflow()
def bulk_job_workflow(job_id: BulkJobId, traceparent: str | None = None) -> str:
    """Run the job to its end. Not a step: its row is its checkpoint (see the module).
    ``traceparent``: the kick-off's trace, continued on whichever worker runs the job
    (ADR 0033; None for jobs enqueued before it was an input, or by the sweep)."""
    uow = _new_unit()  # the run's own: a unit is in one transaction at a time

    def step() -> Progress:
        with (
            continued(traceparent),
            span("bulk.run", {"payerbridge.bulk_job_id": job_id}) as current,
        ):
            ended = run_job(job_id, uow).value
            current.set_attribute("payerbridge.bulk_job_state", ended)
        return Progress(ended=ended)

    failing = OnFailure(
        transient=(StoreUnavailable,),  # the database blinked: a restart, a failover
        end=lambda exc: _failed(job_id, exc),
    )
    return run_until_done(step, failing, clock=uow.clock, log_context={"bulk_job_id": job_id})


def _failed(job_id: BulkJobId, exc: BaseException) -> str:
    logger.error(
        "bulk job failed",
        exc_info=exc,
        extra={"bulk_job_id": job_id, "error_type": type(exc).__name__},
    )
    fail_bulk_job_step(
        job_id, f"internal error ({type(exc).__name__}); the server log has the rest"
    )
    return "failed"


def enqueue_job(job_id: BulkJobId, client_id: ClientId) -> None:
    """Enqueue the job's workflow (its id is the job's: enqueueing again attaches to it)."""
    queue = _queues.get(BULK_QUEUE)
    if queue is None:
        raise RuntimeError(f"the {BULK_QUEUE} queue is not registered")
    with SetWorkflowID(job_id), SetEnqueueOptions(queue_partition_key=client_id):
        queue.enqueue(bulk_job_workflow, job_id, current_traceparent())


@dataclass(frozen=True)
class BulkQueueLimits:
    client_concurrency: int  # jobs of one client running at once, across every worker
    worker_concurrency: int  # jobs one worker runs at once
    polling_interval_seconds: float


def register_queue(limits: BulkQueueLimits) -> None:
    _queues[BULK_QUEUE] = DBOS.register_queue(
        BULK_QUEUE,
        worker_concurrency=limits.worker_concurrency,
        partition_concurrency=limits.client_concurrency,
        polling_interval_sec=limits.polling_interval_seconds,
        on_conflict="always_update",
    )
