"""Deliveries of received records to the plan's FHIR server as durable DBOS workflows:
one per delivery (an exchange run and a destination), on the ``destinations`` queue
(ADR 0053).

An exchange's workflow, once its run has stored data, opens the run's deliveries
(``open_exchange_deliveries``, a step) and enqueues each under the workflow id
``deliver-<delivery id>``, so enqueueing one twice attaches to the first. The delivery's
workflow makes an attempt when it is due (``delivery.service.deliver_once``, a step) and
sleeps durably until the next, until the destination took everything or the delivery
ended otherwise. A worker that dies mid-attempt leaves the workflow to DBOS's recovery:
the attempt runs again and posts only what the destination has not taken from us
(each transaction taken is committed with its resources' hashes).

Workflow functions are module-level, so bootstrap binds the unit with ``bind`` before
DBOS launches (ADR 0004).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from dbos import DBOS, Queue, SetWorkflowID

from payerbridge.clock import utcnow
from payerbridge.delivery.service import (
    DeliverOnce,
    OpenDeliveries,
    OpenOnboardingDeliveries,
    deliver_once,
    open_deliveries,
    open_onboarding_deliveries,
)
from payerbridge.delivery.unit import DestinationUnit
from payerbridge.errors import StoreUnavailable
from payerbridge.tracing import continued, span
from payerbridge.types import ExchangeId
from payerbridge.workflows.steps import TRANSIENT_WAITS

__all__ = [
    "DESTINATION_QUEUE",
    "bind",
    "deliver_exchange",
    "deliver_onboarding",
    "enqueue_deliveries",
    "is_bound",
    "register_queue",
]

DESTINATION_QUEUE = "destinations"
_CONCURRENCY_PER_WORKER = 4
_MIN_WAIT_SECONDS = 0.2

_bound: DestinationUnit | None = None
_queue: Queue | None = None


def bind(unit: DestinationUnit | None) -> None:
    """Called by bootstrap before DBOS launches (None: no destination is configured)."""
    global _bound
    if _bound is not None and _bound is not unit:
        for destination in _bound.destinations.values():
            close = getattr(destination, "close", None)
            if close is not None:
                close()
    _bound = unit


def is_bound() -> bool:
    return _bound is not None


def _unit() -> DestinationUnit:
    if _bound is None:
        raise RuntimeError("workflows.destinations.bind was not called")
    return replace(_bound)


def _is_database_error(error: BaseException) -> bool:
    return isinstance(error, StoreUnavailable)


# The database blinked (a restart, a failover): the step is tried again, as the
# exchange's own ``fail_step`` is, rather than leaving a delivery unopened or stuck.
_ride_out = DBOS.step(
    retries_allowed=True,
    max_attempts=TRANSIENT_WAITS.attempts,
    interval_seconds=TRANSIENT_WAITS.first_wait,
    backoff_rate=2.0,
    should_retry=_is_database_error,
)


@_ride_out
def open_exchange_deliveries(exchange_id: ExchangeId) -> list[str]:
    """The deliveries of the exchange's current run (none when it stored nothing)."""
    if _bound is None:
        return []
    return open_deliveries(OpenDeliveries(exchange_id), _unit())


@_ride_out
def attempt_destination_delivery(delivery_id: str, traceparent: str | None = None) -> float | None:
    """One attempt if due: the seconds until the next, or None once the delivery ended."""
    with (
        continued(traceparent),
        span("destination.deliver", {"payerbridge.delivery_id": delivery_id}),
    ):
        due = deliver_once(DeliverOnce(delivery_id), _unit())
    if due is None:
        return None
    return max((due - utcnow()).total_seconds(), _MIN_WAIT_SECONDS)


@DBOS.workflow()
def destination_delivery(delivery_id: str, traceparent: str | None = None) -> None:
    while (wait := attempt_destination_delivery(delivery_id, traceparent)) is not None:
        DBOS.sleep(wait)


@_ride_out
def open_onboarding_deliveries_step(onboarding_id: str) -> list[str]:
    """The deliveries of what the onboarding stored."""
    if _bound is None:
        return []
    return open_onboarding_deliveries(OpenOnboardingDeliveries(onboarding_id), _unit())


def deliver_onboarding(onboarding_id: str, traceparent: str | None) -> list[str]:
    """Called in the onboarding's workflow once it has ended: as ``deliver_exchange``."""
    delivery_ids = open_onboarding_deliveries_step(onboarding_id)
    enqueue_deliveries(delivery_ids, traceparent)
    return delivery_ids


def register_queue() -> None:
    global _queue
    _queue = DBOS.register_queue(
        DESTINATION_QUEUE, worker_concurrency=_CONCURRENCY_PER_WORKER, on_conflict="always_update"
    )


def deliver_exchange(exchange_id: ExchangeId, traceparent: str | None) -> list[str]:
    """Called in the exchange's workflow once its run has ended: open the run's
    deliveries and start each one's workflow (a no-op for one already started)."""
    delivery_ids = open_exchange_deliveries(exchange_id)
    enqueue_deliveries(delivery_ids, traceparent)
    return delivery_ids


def enqueue_deliveries(delivery_ids: Sequence[str], traceparent: str | None) -> None:
    """Start each delivery's workflow (a no-op for one already started)."""
    if not delivery_ids:
        return
    if _queue is None:
        raise RuntimeError(f"the {DESTINATION_QUEUE} queue is not registered")
    for delivery_id in delivery_ids:
        with SetWorkflowID(f"deliver-{delivery_id}"):
            _queue.enqueue(destination_delivery, delivery_id, traceparent)
