"""Delivering a webhook: claim it when due, post it signed, record the outcome.

Each delivery is a durable workflow of its own (``workflows/webhooks.py``) that calls
``deliver_one`` and sleeps until the delivery is due again. A receiver that answers 2xx
has the delivery; anything else (an error status, a timeout, a refused connection) is
tried again later with full-jitter backoff and ``Retry-After`` honoured, until the
policy's attempts are spent. The receiver's answer body is never read or logged: the
answer is streamed and closed after its status line and headers. The client posts
through ``net.transport.GuardedTransport``, which refuses, at connection time, an
address the egress policy does not allow. ``deliver_one`` is ``(command, uow)`` on a
``DeliveryUnit``: the claim and the outcome are each a ``with uow:`` of their own, and
take their time from it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

import httpx

from payerbridge.errors import UnprocessableRequest
from payerbridge.exchange.calls.retry import retry_after_seconds
from payerbridge.webhooks.links import with_received_link
from payerbridge.webhooks.model import (
    DELIVERY_HEADER,
    EVENT_TYPE,
    SIGNATURE_HEADER,
    next_attempt,
    sign,
)
from payerbridge.webhooks.ports import ClaimedDelivery
from payerbridge.webhooks.unit import DeliveryUnit

__all__ = ["DeliverWebhook", "deliver_one"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliverWebhook:
    delivery_id: str


def deliver_one(command: DeliverWebhook, uow: DeliveryUnit) -> datetime | None:
    """Post the delivery once if it is due. Returns when it is due again (a failed
    attempt's retry, or a delivery not yet due), or None when it needs nothing more
    (delivered, given up, its subscription disabled)."""
    store, delivery_id = uow.webhooks, command.delivery_id
    with uow:
        delivery = store.claim(uow, delivery_id, now=uow.now)
    if delivery is None:
        return store.due(delivery_id)
    try:
        uow.targets.check(delivery.url)  # again: where the name points now
    except UnprocessableRequest as refused:
        with uow:
            store.failed(uow, delivery.id, status=None, error=refused.issues[0].text, retry_at=None)
        logger.warning(
            "webhook target refused",
            extra={"delivery_id": delivery.id, "exchange_id": delivery.exchange_id},
        )
        return None
    return _post(uow, delivery)


def _post(uow: DeliveryUnit, delivery: ClaimedDelivery) -> datetime | None:
    store, client, policy = uow.webhooks, uow.client, uow.policy
    body = delivery.body
    if uow.links is not None:  # made as it is posted: it lasts its lifetime from now
        body = with_received_link(body, uow.links, uow.clock())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "payerbridge-webhooks",
        "Payerbridge-Event": EVENT_TYPE,
        DELIVERY_HEADER: delivery.id,
        SIGNATURE_HEADER: sign(delivery.secret, int(time.time()), body),
    }
    status: int | None = None
    retry_after: str | None = None  # the receiver's Retry-After, as sent
    try:
        request = client.build_request(
            "POST",
            delivery.url,
            content=body,
            headers=headers,
            timeout=policy.timeout_seconds,
        )
        response = client.send(request, stream=True)
        response.close()  # the body is not ours to read
        status = response.status_code
        if 200 <= status < 300:
            with uow:
                store.delivered(uow, delivery.id, status=status, at=uow.now)
            return None
        error = f"the receiver answered {status}"
        retry_after = response.headers.get("retry-after")
    except httpx.HTTPError as exc:
        error = f"could not reach the receiver ({type(exc).__name__})"
    with uow:
        retry_at = next_attempt(
            policy,
            attempt=delivery.attempts,
            now=uow.now,
            retry_after_seconds=retry_after_seconds(retry_after, now=uow.now),
            unit_random=uow.random(),
        )
        store.failed(uow, delivery.id, status=status, error=error, retry_at=retry_at)
    logger.info(
        "webhook delivery failed",
        extra={
            "delivery_id": delivery.id,
            "exchange_id": delivery.exchange_id,
            "attempt": delivery.attempts,
            "status": status,
            "gave_up": retry_at is None,
        },
    )
    return retry_at
