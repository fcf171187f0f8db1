"""Delivering webhooks: claim due deliveries, post them signed, record each outcome.

Every worker runs ``deliver_due`` in a loop (``WebhookSender``). A receiver that answers
2xx has the delivery; anything else (an error status, a timeout, a refused connection)
is tried again later with full-jitter backoff and ``Retry-After`` honoured, until the
policy's attempts are spent. The receiver's answer body is never read or logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import httpx

from payerbridge.exchange.retry import retry_after_seconds
from payerbridge.webhooks.model import (
    DELIVERY_HEADER,
    EVENT_TYPE,
    SIGNATURE_HEADER,
    WebhookPolicy,
    next_attempt,
    sign,
)

__all__ = ["DeliveryStore", "WebhookSender", "deliver_due"]

logger = logging.getLogger(__name__)


class ClaimedDelivery(Protocol):
    """A claimed delivery, read-only (the store's rows are frozen)."""

    @property
    def id(self) -> str: ...
    @property
    def exchange_id(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def body(self) -> bytes: ...
    @property
    def url(self) -> str: ...
    @property
    def secret(self) -> str: ...


class DeliveryStore(Protocol):
    def claim(
        self, *, now: datetime, lease: timedelta, limit: int
    ) -> Sequence[ClaimedDelivery]: ...
    def delivered(self, delivery_id: str, *, status: int, at: datetime) -> None: ...
    def failed(
        self, delivery_id: str, *, status: int | None, error: str, retry_at: datetime | None
    ) -> None: ...


def deliver_due(
    store: DeliveryStore,
    client: httpx.Client,
    policy: WebhookPolicy,
    *,
    clock: Callable[[], datetime],
    random: Callable[[], float],
    limit: int = 20,
) -> int:
    """One pass: post every claimed delivery once. Returns how many were attempted.

    The lease outlasts posting them all, even to receivers that all time out, so no
    other worker takes them meanwhile."""
    lease = timedelta(seconds=limit * policy.timeout_seconds + 30)
    claimed = store.claim(now=clock(), lease=lease, limit=limit)
    for delivery in claimed:
        _post(store, client, policy, delivery, clock=clock, random=random)
    return len(claimed)


def _post(
    store: DeliveryStore,
    client: httpx.Client,
    policy: WebhookPolicy,
    delivery: ClaimedDelivery,
    *,
    clock: Callable[[], datetime],
    random: Callable[[], float],
) -> None:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "payerbridge-webhooks",
        "Payerbridge-Event": EVENT_TYPE,
        DELIVERY_HEADER: delivery.id,
        SIGNATURE_HEADER: sign(delivery.secret, int(time.time()), delivery.body),
    }
    status: int | None = None
    retry_after: float | None = None
    try:
        response = client.post(
            delivery.url, content=delivery.body, headers=headers, timeout=policy.timeout_seconds
        )
        status = response.status_code
        if 200 <= status < 300:
            store.delivered(delivery.id, status=status, at=clock())
            return
        error = f"the receiver answered {status}"
        retry_after = retry_after_seconds(response.headers.get("retry-after"), now=clock())
    except httpx.HTTPError as exc:
        error = f"could not reach the receiver ({type(exc).__name__})"
    retry_at = next_attempt(
        policy,
        attempt=delivery.attempts,
        now=clock(),
        retry_after_seconds=retry_after,
        unit_random=random(),
    )
    store.failed(delivery.id, status=status, error=error, retry_at=retry_at)
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


class WebhookSender:
    """A daemon thread that delivers due webhooks every ``interval`` seconds (at once
    again while there is a backlog)."""

    def __init__(
        self,
        store: DeliveryStore,
        policy: WebhookPolicy,
        *,
        clock: Callable[[], datetime],
        random: Callable[[], float],
        interval: float,
    ) -> None:
        self._store, self._policy = store, policy
        self._clock, self._random, self._interval = clock, random, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._policy.timeout_seconds + 5)

    def _run(self) -> None:
        with httpx.Client(follow_redirects=False) as client:
            while not self._stop.is_set():
                try:
                    busy = deliver_due(
                        self._store,
                        client,
                        self._policy,
                        clock=self._clock,
                        random=self._random,
                    )
                except Exception:  # noqa: BLE001 - a failed pass is retried next interval
                    logger.exception("webhook delivery pass failed")
                    busy = 0
                if not busy:
                    self._stop.wait(self._interval)
