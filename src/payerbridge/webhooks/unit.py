"""The webhooks room's units of work (ADR 0051): a client's subscriptions and their
deliveries, and where a webhook may be posted at all (``WebhookUnit``); and what
posting a delivery takes besides (``DeliveryUnit``, the delivery workflows')."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from payerbridge.transactions import RoomUnit, Transactions
from payerbridge.webhooks.egress import WebhookTargets
from payerbridge.webhooks.links import ReceivedLinks
from payerbridge.webhooks.model import WebhookPolicy
from payerbridge.webhooks.ports import WebhookStore

__all__ = ["DeliveryUnit", "WebhookUnit"]


@dataclass
class WebhookUnit(RoomUnit):
    transactions: Transactions
    webhooks: WebhookStore  # subscriptions and their deliveries
    targets: WebhookTargets  # refuses a URL that resolves where we never post (ADR 0027)


@dataclass
class DeliveryUnit(WebhookUnit):
    """A ``WebhookUnit`` that posts: the HTTP client, the retry policy, a clock and the
    jitter source. The workflows bind one, wired once, and take a copy per attempt."""

    client: httpx.Client  # posts through the egress policy's GuardedTransport
    policy: WebhookPolicy
    clock: Callable[[], datetime]
    random: Callable[[], float]
    links: ReceivedLinks | None = None  # a finished exchange's link to what it received
