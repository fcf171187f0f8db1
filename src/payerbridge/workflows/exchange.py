"""The outbound exchange as a DBOS workflow on a queue partitioned by partner.

The use cases of ``exchange.service`` run in one DBOS step (``service.proceed``), which
takes the exchange as far as it can go. DBOS records the step's result in its system
database, so after a crash the workflow resumes at the first step that did not finish;
the use cases check the exchange's state, so a step cut off after a commit does not
apply it twice. A step whose partner call must be tried again returns when; the
workflow waits with ``DBOS.sleep``, which is durable too, and runs the step again. The
step layout is recorded history: do not change it while runs are in flight (ADR 0004).

Exchanges are enqueued on one queue, partitioned by partner: each partner gets its
own concurrency and rate limit, held by DBOS across every worker, so one slow payer
cannot starve the rest. Any process that listens to the queue is a worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dbos import DBOS, Queue, SetEnqueueOptions, SetWorkflowID
from dbos._queue import QueueRateLimit  # the TypedDict is not re-exported
from sqlalchemy.exc import OperationalError

from payerbridge.errors import IllegalTransition
from payerbridge.exchange import service
from payerbridge.exchange.model import STOPPED_STATES, ExchangeRequest, ExchangeState
from payerbridge.exchange.ports import ExchangePorts
from payerbridge.exchange.schemas import ExchangeCreate
from payerbridge.exchange.service import StepResult
from payerbridge.logging import bind_context

__all__ = [
    "EXCHANGE_QUEUE",
    "QueueLimits",
    "bind_ports",
    "enqueue_exchange",
    "exchange_workflow",
    "register_queue",
    "sweep_unstarted",
]

logger = logging.getLogger(__name__)
EXCHANGE_QUEUE = "exchanges"

_ports: ExchangePorts | None = None


def bind_ports(ports: ExchangePorts) -> None:
    """Called once by bootstrap before DBOS launches (workflow functions are module-level)."""
    global _ports
    _ports = ports


def _current() -> ExchangePorts:
    if _ports is None:
        raise RuntimeError("workflows.exchange.bind_ports was not called")
    return _ports


def _parse(raw: dict[str, Any]) -> ExchangeRequest:
    return ExchangeCreate.model_validate(raw).to_domain()


def _as_dict(result: StepResult) -> dict[str, Any]:
    now = _current().clock()
    wait = (result.retry_at - now).total_seconds() if result.retry_at else None
    return {
        "state": result.state.value,
        "done": result.done,
        "retry_in": None if wait is None else max(wait, 0.0),
        "attempt": result.attempt,
        "since": result.since.isoformat() if result.since else None,
    }


def _is_database_hiccup(error: BaseException) -> bool:
    return isinstance(error, OperationalError)


_DB_RETRIES: dict[str, Any] = {
    "retries_allowed": True,
    "max_attempts": 5,
    "interval_seconds": 0.2,
    "backoff_rate": 2.0,
    "should_retry": _is_database_hiccup,
}


# One DBOS step runs the exchange as far as it can go: the use cases check the exchange's
# state first and carry on from it, so a step cut off anywhere runs again from the last
# commit. It returns when the exchange stops or a partner call must wait; the workflow
# waits (durably) and runs it again for that call's next attempt. One step is one record
# in DBOS's database per exchange on the happy path, not one per partner call.


@DBOS.step(**_DB_RETRIES)
def exchange_step(
    exchange_id: str, waiting_in: str | None, attempt: int, since: str | None
) -> dict[str, Any]:
    """``service.proceed``; ``waiting_in``/``attempt``/``since``: the call being retried."""
    resume = None
    if waiting_in is not None and since is not None:
        resume = service.Resume(ExchangeState(waiting_in), attempt, datetime.fromisoformat(since))
    return _as_dict(service.proceed(_current(), exchange_id, _parse, resume=resume))


@DBOS.step(**_DB_RETRIES)
def fail_step(exchange_id: str, code: str, text: str) -> str:
    return service.fail(_current(), exchange_id, code, text).state.value


@DBOS.workflow()
def exchange_workflow(exchange_id: str) -> str:
    bind_context(exchange_id=exchange_id)
    waiting_in: str | None = None
    attempt, since = 1, None
    while True:
        try:
            outcome = exchange_step(exchange_id, waiting_in, attempt, since)
        except IllegalTransition:
            # Someone else moved the exchange meanwhile (a revocation blocked it, an
            # operator failed it): what they decided stands.
            return fail_step(exchange_id, "state-changed", "the exchange changed state")
        except Exception as exc:  # noqa: BLE001 - every failure must end the exchange visibly
            logger.exception(
                "exchange step failed",
                extra={"exchange_id": exchange_id, "error_type": type(exc).__name__},
            )
            text = f"internal error ({type(exc).__name__}); see the server log"
            return fail_step(exchange_id, "internal-error", text)
        state = str(outcome["state"])
        if outcome["done"] or outcome["retry_in"] is None:
            return state
        waiting_in, attempt, since = state, int(outcome["attempt"]), outcome["since"]
        DBOS.sleep(outcome["retry_in"])


def workflow_id(exchange_id: str, replay_count: int) -> str:
    """The exchange id for its first run; each replay is a new workflow of its own."""
    return exchange_id if replay_count == 0 else f"{exchange_id}:replay-{replay_count}"


def enqueue_exchange(exchange_id: str, partner_id: str, *, replay_count: int = 0) -> None:
    """Enqueue the exchange's workflow; the id is derived from the exchange, so enqueueing
    it again (a retried POST, the sweep) attaches to the same workflow instead."""
    queue = _queues.get(EXCHANGE_QUEUE)
    if queue is None:
        raise RuntimeError(f"the {EXCHANGE_QUEUE} queue is not registered")
    with (
        SetWorkflowID(workflow_id(exchange_id, replay_count)),
        SetEnqueueOptions(queue_partition_key=partner_id),
    ):
        queue.enqueue(exchange_workflow, exchange_id)


_queues: dict[str, Queue] = {}


@dataclass(frozen=True)
class QueueLimits:
    """Per-partner limits of the exchange queue, from settings."""

    partner_concurrency: int
    partner_rate_per_second: float | None
    worker_concurrency: int
    polling_interval_seconds: float


def register_queue(limits: QueueLimits) -> None:
    """Declare the partitioned exchange queue (after launch; every process declares the
    same configuration, so the last one to start wins nothing different)."""
    rate = limits.partner_rate_per_second
    limiter: QueueRateLimit | None = None
    if rate:  # starts per second, as whole starts per period: 0.5/s is 1 per 2 s
        limiter = {"limit": max(1, round(rate)), "period": max(1, round(rate)) / rate}
    # Kept: looking it up in DBOS reads its system database on every enqueue.
    _queues[EXCHANGE_QUEUE] = DBOS.register_queue(
        EXCHANGE_QUEUE,
        worker_concurrency=max(limits.worker_concurrency, limits.partner_concurrency),
        partition_concurrency=limits.partner_concurrency,
        partition_limiter=limiter,
        polling_interval_sec=limits.polling_interval_seconds,
        on_conflict="always_update",
    )


def sweep_unstarted(ports: ExchangePorts, *, older_than: timedelta) -> int:
    """Enqueue the workflow of every exchange that is still working but has not moved for
    ``older_than``: one whose process died between recording it and enqueueing it.
    Enqueueing an existing workflow id is a no-op, so this is safe to run anywhere."""
    store = ports.exchanges
    cutoff = ports.clock() - older_than
    count = 0
    for state in ExchangeState:
        if state in STOPPED_STATES:
            continue
        for exchange_id in store.ids_in_state(state, updated_before=cutoff):
            record = store.current(exchange_id)
            enqueue_exchange(exchange_id, record.partner_id, replay_count=record.replay_count)
            count += 1
    if count:
        logger.info("exchange sweep enqueued", extra={"exchanges": count})
    return count
