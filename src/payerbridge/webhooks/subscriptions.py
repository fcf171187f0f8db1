"""A client's webhook subscriptions, as it asks for them: subscribe a URL (where a
webhook may be posted at all decided first), and stop one. Each is one use case on the
room's unit of work (ADR 0051)."""

from __future__ import annotations

from dataclasses import dataclass

from payerbridge.types import ClientId
from payerbridge.webhooks.model import Subscription
from payerbridge.webhooks.unit import WebhookUnit

__all__ = ["Subscribe", "Unsubscribe", "subscribe", "unsubscribe"]


@dataclass(frozen=True)
class Subscribe:
    """Tell ``url`` of the state changes of ``client_id``'s exchanges, signed with
    ``secret`` (the operator's: of every exchange)."""

    client_id: ClientId
    url: str
    secret: str

    def __repr__(self) -> str:  # the secret never reaches a log or traceback
        return f"Subscribe(client_id={self.client_id!r}, url={self.url!r}, secret='***')"


@dataclass(frozen=True)
class Unsubscribe:
    subscription_id: str
    client_id: ClientId  # whose it must be: another client's answers as a missing one


def subscribe(command: Subscribe, uow: WebhookUnit) -> Subscription:
    """The subscription, kept; UnprocessableRequest when its URL resolves where we never
    post (ADR 0027), and nothing is kept."""
    url = uow.targets.check(command.url)
    with uow:
        return uow.webhooks.subscribe(
            uow, client_id=command.client_id, url=url, secret=command.secret, at=uow.now
        )


def unsubscribe(command: Unsubscribe, uow: WebhookUnit) -> Subscription:
    """The subscription, disabled now: deliveries not yet made are marked failed."""
    with uow:
        return uow.webhooks.disable(uow, command.subscription_id, command.client_id, at=uow.now)
