"""The webhooks room's ports: what delivering needs from the outbox, and
``WebhookStore``, the platform's subscriptions and outbox (``store.webhooks``)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId
from payerbridge.webhooks.model import Delivery, Subscription

__all__ = ["ClaimedDelivery", "DeliveryStore", "WebhookStore"]


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
    """The outbox as delivering sees it; each write in the caller's unit of work."""

    def claim(self, unit: UnitOfWork, delivery_id: str, *, now: datetime) -> ClaimedDelivery | None:
        """The delivery, counted as one more attempt, if it is pending and due."""
        ...

    def due(self, delivery_id: str) -> datetime | None:
        """When the pending delivery is due; None once it needs nothing more."""
        ...

    def delivered(
        self, unit: UnitOfWork, delivery_id: str, *, status: int, at: datetime
    ) -> None: ...
    def failed(
        self,
        unit: UnitOfWork,
        delivery_id: str,
        *,
        status: int | None,
        error: str,
        retry_at: datetime | None,
    ) -> None: ...


class WebhookStore(DeliveryStore, Protocol):
    """Subscriptions, by their client, and the outbox the workflows drain."""

    def subscribe(
        self, unit: UnitOfWork, *, client_id: ClientId, url: str, secret: str, at: datetime
    ) -> Subscription: ...

    def subscriptions(self, client_id: ClientId) -> list[Subscription]: ...

    def subscription(self, subscription_id: str, client_id: ClientId) -> Subscription: ...

    def disable(
        self, unit: UnitOfWork, subscription_id: str, client_id: ClientId, *, at: datetime
    ) -> Subscription: ...

    def deliveries(self, subscription_id: str, *, limit: int, offset: int) -> list[Delivery]: ...

    def overdue(self, *, before: datetime, limit: int = 1000) -> list[str]: ...

    def pending_count(self) -> int: ...
