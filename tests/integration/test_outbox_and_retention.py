"""What the workers keep and clean up, on a real database: the webhook outbox (written with
the transition, claimed under a lease, retried, given up; the receiver behind
httpx.MockTransport) and stored Idempotency-Key answers (purged after their retention)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from payerbridge.bootstrap import Platform, build_platform
from payerbridge.config import load_settings
from payerbridge.exchange.model import ExchangeState, Move, NewExchange, Stamp
from payerbridge.idempotency.model import ClaimStatus, KeyClaim, StoredResponse
from payerbridge.routing.enrolment import StorePartner, store_partner
from payerbridge.routing.model import Partner
from payerbridge.store.unit_of_work import SqlTransactions
from payerbridge.types import OPERATOR, ClientId, ExchangeId, PartnerId
from payerbridge.webhooks.delivery import DeliverWebhook, deliver_one
from payerbridge.webhooks.egress import WebhookTargets
from payerbridge.webhooks.model import Delivery, DeliveryStatus, Subscription, WebhookPolicy
from payerbridge.webhooks.unit import DeliveryUnit

T0 = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture
def platform(tmp_path: Path, database_env: Callable[[], dict[str, str]]) -> Iterator[Platform]:
    env = database_env()
    platform = build_platform(
        load_settings(data_dir=tmp_path, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))
    )
    store_partner(
        StorePartner(Partner("old", "Old Plan", "1245319599", "http://old/fhir"), "test"),
        platform.units.partners(),
    )
    yield platform
    platform.close()


def subscribe(platform: Platform, client_id: str, url: str) -> Subscription:
    with platform.transactions.begin() as unit:
        return platform.webhooks.subscribe(unit, client_id=client_id, url=url, secret="s", at=T0)


def claim(platform: Platform, delivery_id: str, now: datetime) -> Delivery | None:
    with platform.transactions.begin() as unit:
        return platform.webhooks.claim(unit, delivery_id, now=now)


def record_exchange(platform: Platform, client_id: str) -> str:
    exchange_id = ExchangeId(f"ex-{client_id}")
    with platform.transactions.begin() as unit:
        platform.exchanges.within(unit).create(
            NewExchange(
                exchange_id=exchange_id,
                partner_id="old",
                client_id=client_id,
                request={},
                request_hash="h",
                at=T0,
                idempotency_key=None,
                deadline_at=None,
                policy_version="p",
                consent_id=None,
            )
        )
    with platform.transactions.begin() as unit:
        platform.exchanges.within(unit).advance(
            exchange_id, [Move(ExchangeState.VALIDATED)], Stamp(T0, "test")
        )
    return exchange_id


def test_deliveries_are_written_for_the_owner_and_the_operator_only(platform: Platform) -> None:
    mine = subscribe(platform, "portal", "https://a/x")
    ops = subscribe(platform, OPERATOR, "https://b/x")
    subscribe(platform, "someone-else", "https://c/x")
    record_exchange(platform, "portal")
    for subscription in (mine, ops):
        deliveries = platform.webhooks.deliveries(subscription.id, limit=10, offset=0)
        assert [(d.seq, d.status) for d in deliveries] == [
            (1, DeliveryStatus.PENDING),
            (2, DeliveryStatus.PENDING),
        ]
    assert platform.webhooks.pending_count() == 4


def test_the_deliveries_a_unit_of_work_wrote_are_relayed_once_it_commits(
    platform: Platform,
) -> None:
    subscribe(platform, "portal", "https://a/x")
    relayed: list[str] = []
    platform.transactions.relay_deliveries = relayed.extend
    with pytest.raises(RuntimeError), platform.transactions.begin() as unit:
        platform.exchanges.within(unit).create(
            NewExchange(
                exchange_id=ExchangeId("ex-lost"),
                partner_id=PartnerId("old"),
                client_id="portal",
                request={},
                request_hash="h",
                at=T0,
            )
        )
        raise RuntimeError("rolled back: nothing to relay")
    assert relayed == []
    exchange_id = record_exchange(platform, "portal")
    [subscription] = platform.webhooks.subscriptions("portal")
    written = platform.webhooks.deliveries(subscription.id, limit=10, offset=0)
    assert sorted(relayed) == sorted(d.id for d in written) and len(written) == 2
    assert all(d.exchange_id == exchange_id for d in written)
    # Never started (no relay in that process): overdue after they were due.
    assert platform.webhooks.overdue(before=T0) == []
    assert sorted(platform.webhooks.overdue(before=T0 + timedelta(seconds=1))) == sorted(relayed)


PUBLIC_A = WebhookTargets(resolve=lambda host: ["93.184.215.14"])  # "a" is public


def test_a_delivery_is_claimed_only_when_pending_and_due(platform: Platform) -> None:
    subscribe(platform, "portal", "https://a/x")
    record_exchange(platform, "portal")
    [subscription] = platform.webhooks.subscriptions("portal")
    first, _ = platform.webhooks.deliveries(subscription.id, limit=10, offset=0)
    assert claim(platform, first.id, T0 - timedelta(seconds=1)) is None
    assert platform.webhooks.due(first.id) == T0
    claimed = claim(platform, first.id, T0)
    assert claimed is not None and claimed.attempts == 1 and claimed.url == "https://a/x"
    with platform.transactions.begin() as unit:
        platform.webhooks.delivered(unit, first.id, status=200, at=T0)
    assert claim(platform, first.id, T0) is None
    assert platform.webhooks.due(first.id) is None  # nothing more to do


def test_failures_are_retried_with_backoff_then_given_up(platform: Platform) -> None:
    subscribe(platform, "portal", "https://a/x")
    record_exchange(platform, "portal")
    [subscription] = platform.webhooks.subscriptions("portal")
    ids = [d.id for d in platform.webhooks.deliveries(subscription.id, limit=10, offset=0)]
    calls: list[httpx.Request] = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, headers={"Retry-After": "5"})

    policy = WebhookPolicy(max_attempts=3, base_delay_seconds=1, max_delay_seconds=60)
    now = [T0]
    transactions = SqlTransactions(platform.engine, clock=lambda: now[0])

    def deliver(delivery_id: str) -> datetime | None:
        uow = DeliveryUnit(
            transactions, platform.webhooks, PUBLIC_A, client, policy, lambda: now[0], lambda: 0.5
        )
        return deliver_one(DeliverWebhook(delivery_id), uow)

    with httpx.Client(transport=httpx.MockTransport(down)) as client:
        for attempt in range(3):
            due = [deliver(delivery_id) for delivery_id in ids]
            if attempt < 2:  # tried again no sooner than Retry-After says
                assert all(at is not None and at >= now[0] + timedelta(seconds=5) for at in due)
                assert [deliver(delivery_id) for delivery_id in ids] == due  # not due yet
            else:
                assert due == [None, None]  # the attempts are spent
            now[0] += timedelta(seconds=6)
    assert len(calls) == 6
    assert all(c.headers["payerbridge-signature"].startswith("t=") for c in calls)
    assert platform.webhooks.pending_count() == 0
    deliveries = platform.webhooks.deliveries(subscription.id, limit=10, offset=0)
    assert {(d.status, d.attempts, d.last_status) for d in deliveries} == {
        (DeliveryStatus.FAILED, 3, 503)
    }


def test_a_target_that_now_resolves_inside_the_network_is_not_posted_to(
    platform: Platform,
) -> None:
    """The name was public when subscribed; it points at a private address by the time of
    the delivery (a rebinding): the delivery gives up, and nothing is posted."""
    subscribe(platform, "portal", "https://a/x")
    record_exchange(platform, "portal")
    [subscription] = platform.webhooks.subscriptions("portal")
    ids = [d.id for d in platform.webhooks.deliveries(subscription.id, limit=10, offset=0)]
    calls: list[httpx.Request] = []
    rebound = WebhookTargets(resolve=lambda host: ["10.0.0.7"])
    with httpx.Client(transport=httpx.MockTransport(calls.append)) as client:  # type: ignore[arg-type]
        due = [
            deliver_one(
                DeliverWebhook(delivery_id),
                DeliveryUnit(
                    SqlTransactions(platform.engine, clock=lambda: T0),
                    platform.webhooks,
                    rebound,
                    client,
                    WebhookPolicy(max_attempts=3),
                    lambda: T0,
                    lambda: 0.5,
                ),
            )
            for delivery_id in ids
        ]
    assert due == [None, None] and calls == []
    deliveries = platform.webhooks.deliveries(subscription.id, limit=10, offset=0)
    assert {d.status for d in deliveries} == {DeliveryStatus.FAILED}
    assert all("private" in (d.last_error or "") for d in deliveries)


def test_stored_idempotent_answers_are_purged_after_their_retention(platform: Platform) -> None:
    store, transactions = platform.idempotency, platform.transactions
    stale = timedelta(minutes=5)

    def claim(key: str, now: datetime) -> ClaimStatus:
        with transactions.begin() as unit:
            return store.claim(
                unit,
                KeyClaim(ClientId("newplan"), key, "everything", "h", stale),
                now=now,
            ).status

    for key, at in (("old", T0), ("new", T0 + timedelta(hours=30))):
        assert claim(key, at) is ClaimStatus.CLAIMED
        with transactions.begin() as unit:
            store.complete(unit, "newplan", key, StoredResponse(200, "application/fhir+json", "{}"))
    with transactions.begin() as unit:
        assert store.purge(unit, before=T0 + timedelta(hours=24)) == 1
    # The purged key is a new call again; the kept one still replays its answer.
    later = T0 + timedelta(hours=31)
    assert (claim("old", later), claim("new", later)) == (ClaimStatus.CLAIMED, ClaimStatus.ANSWERED)


def test_a_first_claim_that_loses_the_insert_is_in_flight_and_its_unit_still_commits(
    platform: Platform,
) -> None:
    """Two first claims of one key: the one whose insert meets the other's row (written
    after its read found none) is told the call is in flight, without an error that would
    spoil its unit of work (on PostgreSQL, an aborted transaction)."""
    other = (
        "INSERT INTO idempotent_responses (client_id, idempotency_key, operation, "
        "request_hash, status, media_type, body, created_at) "
        "VALUES ('newplan', 'k', 'everything', 'h', 0, '', '', '2027-01-01 00:00:00')"
    )

    def the_other_call_first(
        _conn: Any, cursor: Any, statement: str, *_: Any
    ) -> None:  # just before this claim's INSERT
        if statement.lstrip().upper().startswith("INSERT INTO IDEMPOTENT_RESPONSES"):
            cursor.connection.cursor().execute(other)

    store, stale = platform.idempotency, timedelta(minutes=5)
    event.listen(platform.engine, "before_cursor_execute", the_other_call_first)
    try:
        with platform.transactions.begin() as unit:
            raced = store.claim(
                unit,
                KeyClaim(ClientId("newplan"), "k", "everything", "h", stale),
                now=T0,
            )
            store.release(unit, "newplan", "other-key")  # the unit goes on
    finally:
        event.remove(platform.engine, "before_cursor_execute", the_other_call_first)
    assert raced.status is ClaimStatus.IN_FLIGHT
    with platform.transactions.begin() as unit:  # the other call's claim was committed
        again = store.claim(
            unit,
            KeyClaim(ClientId("newplan"), "k", "everything", "h", stale),
            now=T0,
        )
    assert again.status is ClaimStatus.IN_FLIGHT
