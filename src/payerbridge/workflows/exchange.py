"""The outbound exchange as a DBOS workflow on a queue partitioned by partner.

The workflow runs the use cases of the exchange room through ``exchange.steps.machine.proceed``,
which takes the exchange as far as it can go from the state its row records. DBOS makes
the workflow durable: it is queued, and a run cut off by a crash is recovered and runs
again, which resumes from the row; the use cases check the exchange's state, so a commit
is never applied twice. A partner call that must be tried again is waited for with
``DBOS.sleep``, which is durable too. The recorded operations (the sleeps, ``fail_step``)
are history: do not reorder them while runs are in flight (ADR 0004).

Exchanges are enqueued on one queue, partitioned by partner: each partner gets its
own concurrency and rate limit, held by DBOS across every worker, so one slow payer
cannot starve the rest. Any process that listens to the queue is a worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from dbos import DBOS, Queue, SetEnqueueOptions, SetWorkflowID

from payerbridge.errors import IllegalTransition, StoreUnavailable
from payerbridge.exchange.model import DATA_ENDS, STOPPED_STATES, ExchangeStart, ExchangeState
from payerbridge.exchange.moves import fail
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.exchange.requests import request_from_document
from payerbridge.exchange.steps.machine import proceed
from payerbridge.exchange.steps.review import awaits_partner_review
from payerbridge.exchange.unit import ExchangeUnit, ExchangeWiring
from payerbridge.logging import bind_context
from payerbridge.tracing import continued, current_traceparent, span
from payerbridge.types import ExchangeId, PartnerId
from payerbridge.workflows import destinations
from payerbridge.workflows.steps import TRANSIENT_WAITS, OnFailure, Progress, run_until_done

__all__ = [
    "EXCHANGE_QUEUE",
    "Due",
    "QueueLimits",
    "bind_wiring",
    "enqueue_exchange",
    "enqueue_start",
    "exchange_workflow",
    "register_queue",
    "unstarted_exchanges",
]

logger = logging.getLogger(__name__)
EXCHANGE_QUEUE = "exchanges"

_wiring: ExchangeWiring | None = None


def bind_wiring(wiring: ExchangeWiring) -> None:
    """Called once by bootstrap before DBOS launches (workflow functions are module-level)."""
    global _wiring
    _wiring = wiring


def _unit() -> ExchangeUnit:
    """A unit of work of its own for each use case the workflows run (ADR 0051)."""
    if _wiring is None:
        raise RuntimeError("workflows.exchange.bind_wiring was not called")
    return ExchangeUnit(_wiring)


def _is_database_error(error: BaseException) -> bool:
    return isinstance(error, StoreUnavailable)


@DBOS.step(
    retries_allowed=True,
    max_attempts=TRANSIENT_WAITS.attempts,
    interval_seconds=TRANSIENT_WAITS.first_wait,
    backoff_rate=2.0,
    should_retry=_is_database_error,
)
def fail_step(exchange_id: ExchangeId, code: str, text: str) -> str:
    return fail(_unit(), exchange_id, code, text).state.value


@DBOS.workflow()
def exchange_workflow(exchange_id: ExchangeId, traceparent: str | None = None) -> str:
    """Run ``proceed`` until the exchange stops, waiting durably (``DBOS.sleep``)
    whenever a partner call must be tried again later.

    ``traceparent``: the trace of the request that started the run (ADR 0033), an input
    DBOS keeps with the workflow: each step continues it, on any worker, however late,
    and the partner calls carry it on.

    ``proceed`` is not a DBOS step: the exchange's row is its checkpoint. Each commit
    moves the row on, with what a waiting call needs to resume (its attempts, when its
    step began, when it is due), so a run cut off anywhere, recovered on any worker,
    calls ``proceed`` again and carries on from the last commit. A step record in DBOS's
    database would say again what the row says, for the cost of more round trips per
    exchange than the exchange's own commits (ADR 0004). The only recorded operations
    are the sleeps and ``fail_step``."""
    bind_context(exchange_id=exchange_id)
    uow = _unit()

    def step() -> Progress:
        with (
            continued(traceparent),
            span("exchange.proceed", {"payerbridge.exchange_id": exchange_id}) as current,
        ):
            result = proceed(uow, exchange_id, request_from_document)
            current.set_attribute("payerbridge.exchange_state", result.state.value)
        if result.done or result.retry_at is None:
            return Progress(ended=result.state.value)
        return Progress(resume_at=result.retry_at)

    def end(exc: BaseException) -> str:
        if isinstance(exc, IllegalTransition):
            # Someone else moved the exchange meanwhile (a revocation blocked it, an
            # operator failed it): what they decided stands.
            return fail_step(
                exchange_id, ExchangeReason.STATE_CHANGED.value, "the exchange changed state"
            )
        logger.error(
            "exchange step failed",
            exc_info=exc,
            extra={"exchange_id": exchange_id, "error_type": type(exc).__name__},
        )
        text = f"internal error ({type(exc).__name__}); see the server log"
        return fail_step(exchange_id, ExchangeReason.INTERNAL_ERROR.value, text)

    failing = OnFailure(
        transient=(StoreUnavailable,),  # the database blinked: a restart, a failover
        end=end,
    )
    ended = run_until_done(step, failing, clock=uow.clock, log_context={"exchange_id": exchange_id})
    if ended in DATA_ENDS and destinations.is_bound():
        # What the run stored goes on to the plan's FHIR server (ADR 0053): recorded
        # after every operation of the run, so runs in flight keep their history.
        destinations.deliver_exchange(exchange_id, traceparent)
    return ended


def workflow_id(exchange_id: ExchangeId, replay_count: int, review_round: int = 0) -> str:
    """The exchange id for its first run; each replay is a new workflow of its own, and so
    is each time we ask the old payer's reviewer again (named by when it was due)."""
    name = exchange_id if replay_count == 0 else f"{exchange_id}:replay-{replay_count}"
    return f"{name}:review-{review_round}" if review_round else name


def enqueue_exchange(
    exchange_id: ExchangeId,
    partner_id: PartnerId,
    *,
    replay_count: int = 0,
    review_round: int = 0,
) -> None:
    """Enqueue the exchange's workflow, to continue the current trace; the id is derived
    from the exchange, so enqueueing it again (a retried POST, the sweep) attaches to the
    same workflow instead."""
    queue = _queues.get(EXCHANGE_QUEUE)
    if queue is None:
        raise RuntimeError(f"the {EXCHANGE_QUEUE} queue is not registered")
    with (
        SetWorkflowID(workflow_id(exchange_id, replay_count, review_round)),
        SetEnqueueOptions(queue_partition_key=partner_id),
    ):
        queue.enqueue(exchange_workflow, exchange_id, current_traceparent())


def enqueue_start(start: ExchangeStart | None) -> None:
    """Enqueue the run a use case says to start (None: there is none to start)."""
    if start is not None:
        enqueue_exchange(start.exchange_id, start.partner_id, replay_count=start.replay_count)


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
    starts = max(1, round(rate or 1))  # per second, as whole starts per period: 0.5/s is 1 per 2 s
    # Kept: looking it up in DBOS reads its system database on every enqueue.
    _queues[EXCHANGE_QUEUE] = DBOS.register_queue(
        EXCHANGE_QUEUE,
        worker_concurrency=max(limits.worker_concurrency, limits.partner_concurrency),
        partition_concurrency=limits.partner_concurrency,
        partition_limiter={"limit": starts, "period": starts / rate} if rate else None,
        polling_interval_sec=limits.polling_interval_seconds,
        on_conflict="always_update",
    )


# An exchange to (re)start, as ``enqueue_exchange`` takes it: id, partner, replay count
# and review round. A tuple, as the sweep's recorded step output was before the round.
Due = tuple[ExchangeId, PartnerId, int, int]


def unstarted_exchanges(uow: ExchangeUnit, *, older_than: timedelta) -> list[Due]:
    """Every exchange that is still working but has not moved for ``older_than`` (its
    process may have died between recording it and enqueueing it), and every one whose
    next question to the old payer's reviewer is due. Enqueueing an existing workflow id
    is a no-op, so enqueueing all of them is safe from anywhere."""
    store = uow.exchanges
    now = uow.clock()
    cutoff = now - older_than
    found = []
    for state in ExchangeState:
        if state in STOPPED_STATES:
            continue
        for exchange_id in store.ids_in_state(state, updated_before=cutoff):
            record = store.current(exchange_id)
            found.append((exchange_id, record.partner_id, record.replay_count, 0))
    for exchange_id in store.ids_in_state(ExchangeState.MANUAL_REVIEW, updated_before=now):
        record = store.current(exchange_id)
        due = record.next_attempt_at
        if awaits_partner_review(record) and due is not None and due <= now:
            round_ = int(due.timestamp())
            found.append((exchange_id, record.partner_id, record.replay_count, round_))
    return found
