"""The webhooks room's unit of work (ADR 0051): a client's subscriptions and their
deliveries, and where a webhook may be posted at all."""

from __future__ import annotations

from dataclasses import dataclass

from payerbridge.transactions import RoomUnit, Transactions
from payerbridge.webhooks.egress import WebhookTargets
from payerbridge.webhooks.ports import WebhookStore

__all__ = ["WebhookUnit"]


@dataclass
class WebhookUnit(RoomUnit):
    transactions: Transactions
    webhooks: WebhookStore  # subscriptions and their deliveries
    targets: WebhookTargets  # refuses a URL that resolves where we never post (ADR 0027)
