"""A client's webhook subscriptions as use cases on the room's unit of work (ADR 0051):
what is kept, in which transaction, stamped with its instant; a URL we never post to
refused before anything is kept."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pytest

from payerbridge.errors import NotFound, UnprocessableRequest
from payerbridge.net.addresses import AddressPolicy
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId
from payerbridge.webhooks.egress import WebhookTargets
from payerbridge.webhooks.model import Subscription
from payerbridge.webhooks.subscriptions import Subscribe, Unsubscribe, subscribe, unsubscribe
from payerbridge.webhooks.unit import WebhookUnit
from tests.fakes import FakeClock, InMemoryAuditLog, InMemoryTransactions

CLIENT = ClientId("client-a")


@dataclass
class _Subscriptions:
    """The subscribing half of the ``WebhookStore`` port; each write names its unit."""

    kept: dict[str, Subscription] = field(default_factory=dict)
    units: list[UnitOfWork] = field(default_factory=list)

    def subscribe(
        self, unit: UnitOfWork, *, client_id: ClientId, url: str, secret: str, at: datetime
    ) -> Subscription:
        self.units.append(unit)
        kept = Subscription(unit.new_id(), client_id, url, at, None)
        self.kept[kept.id] = kept
        return kept

    def disable(
        self, unit: UnitOfWork, subscription_id: str, client_id: ClientId, *, at: datetime
    ) -> Subscription:
        self.units.append(unit)
        found = self.kept.get(subscription_id)
        if found is None or found.client_id != client_id:
            raise NotFound(f"no subscription {subscription_id}")
        self.kept[subscription_id] = replace(found, disabled_at=at)
        return self.kept[subscription_id]


def _unit() -> tuple[WebhookUnit, _Subscriptions, FakeClock]:
    clock = FakeClock()
    store = _Subscriptions()
    transactions = InMemoryTransactions(InMemoryAuditLog(), store, clock=clock)
    targets = WebhookTargets(AddressPolicy(), resolve=lambda _: ["93.184.215.14"])
    webhooks: Any = store  # the half of the port these use cases write through
    return WebhookUnit(transactions, webhooks, targets), store, clock


def test_a_subscription_is_kept_in_the_units_transaction_at_its_instant() -> None:
    uow, store, clock = _unit()
    kept = subscribe(Subscribe(CLIENT, "https://hooks.example.com/p2p", "s3cret"), uow)
    assert (kept.client_id, kept.url, kept.created_at) == (
        CLIENT,
        "https://hooks.example.com/p2p",
        clock.now,
    )
    assert store.units == [uow]  # the unit itself, in its transaction
    assert "s3cret" not in repr(Subscribe(CLIENT, "https://hooks.example.com/p2p", "s3cret"))


def test_a_url_we_never_post_to_is_refused_and_nothing_is_kept() -> None:
    uow, store, _ = _unit()
    with pytest.raises(UnprocessableRequest):
        subscribe(Subscribe(CLIENT, "http://hooks.example.com/p2p", "s3cret"), uow)
    assert store.kept == {}


def test_unsubscribing_disables_the_callers_own_and_no_other() -> None:
    uow, store, clock = _unit()
    kept = subscribe(Subscribe(CLIENT, "https://hooks.example.com/p2p", "s3cret"), uow)
    with pytest.raises(NotFound):
        unsubscribe(Unsubscribe(kept.id, ClientId("client-b")), uow)
    disabled = unsubscribe(Unsubscribe(kept.id, CLIENT), uow)
    assert disabled.disabled_at == clock.now
    assert store.kept[kept.id].disabled_at == clock.now
