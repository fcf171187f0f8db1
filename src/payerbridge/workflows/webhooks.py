"""Webhook deliveries as durable DBOS workflows: one per delivery, on the ``webhooks`` queue.

A unit of work that writes deliveries hands their ids on once it commits
(``SqlTransactions.relay_deliveries``), and each is enqueued here under the workflow id
``webhook-<delivery id>``, so enqueueing one twice attaches to the first. The workflow
posts the delivery when it is due (``webhooks.delivery.deliver_one``, a step) and sleeps
durably (``DBOS.sleep``) until a failed attempt is due again, until the receiver takes
it or the policy's attempts are spent. A worker that dies mid-post leaves the workflow
to DBOS's recovery, which posts again: deliveries are at least once, and receivers
deduplicate by the delivery id header. The sweep (``workflows.maintenance``) enqueues
deliveries that are overdue, whose workflow was never started.

Workflow functions are module-level, so bootstrap binds what their steps use with
``bind`` before DBOS launches (ADR 0004).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from dbos import DBOS, Queue, SetWorkflowID

from payerbridge.tracing import continued, current_traceparent, span
from payerbridge.webhooks.delivery import DeliverWebhook, deliver_one
from payerbridge.webhooks.unit import DeliveryUnit

__all__ = ["WEBHOOK_QUEUE", "DeliveryUnit", "bind", "enqueue_deliveries", "register_queue"]

logger = logging.getLogger(__name__)
WEBHOOK_QUEUE = "webhooks"
# A delivery mostly waits on a receiver's network; a slow receiver holds one slot.
_CONCURRENCY_PER_WORKER = 16
# The shortest wait between two looks at a delivery that could not be claimed although
# due: never a busy loop of recorded steps.
_MIN_WAIT_SECONDS = 0.2


_bound: DeliveryUnit | None = None
_queue: Queue | None = None


def bind(delivery: DeliveryUnit | None) -> None:
    """Called by bootstrap before DBOS launches (None when it shuts down; the previous
    binding's HTTP client is closed)."""
    global _bound
    if _bound is not None and _bound is not delivery:
        _bound.client.close()
    _bound = delivery


def _delivery() -> DeliveryUnit:
    """A copy of the bound unit, of this attempt's own: attempts run side by side."""
    if _bound is None:
        raise RuntimeError("workflows.webhooks.bind was not called")
    return replace(_bound)


@DBOS.step()
def attempt_delivery(delivery_id: str, traceparent: str | None = None) -> float | None:
    """Post the delivery once if it is due: the seconds until it is due again, or None
    once it needs nothing more. The post continues ``traceparent`` (the bound client
    sends the current trace context: ``send_trace_context``)."""
    uow = _delivery()
    with (
        continued(traceparent),
        span("webhook.deliver", {"payerbridge.delivery_id": delivery_id}),
    ):
        due = deliver_one(DeliverWebhook(delivery_id), uow)
    if due is None:
        return None
    return max((due - uow.clock()).total_seconds(), _MIN_WAIT_SECONDS)


@DBOS.workflow()
def webhook_delivery(delivery_id: str, traceparent: str | None = None) -> None:
    """``traceparent``: the trace of the unit whose commit made the delivery (ADR 0033);
    None when the sweep enqueued it."""
    while (wait := attempt_delivery(delivery_id, traceparent)) is not None:
        DBOS.sleep(wait)


def register_queue() -> None:
    """Declare the webhooks queue (after launch, in every process: API-only ones enqueue)."""
    global _queue
    _queue = DBOS.register_queue(
        WEBHOOK_QUEUE, worker_concurrency=_CONCURRENCY_PER_WORKER, on_conflict="always_update"
    )


def enqueue_deliveries(delivery_ids: Sequence[str]) -> None:
    """Start each delivery's workflow (a no-op for one already started)."""
    if _queue is None:
        raise RuntimeError(f"the {WEBHOOK_QUEUE} queue is not registered")
    traceparent = current_traceparent()
    for delivery_id in delivery_ids:
        with SetWorkflowID(f"webhook-{delivery_id}"):
            _queue.enqueue(webhook_delivery, delivery_id, traceparent)
