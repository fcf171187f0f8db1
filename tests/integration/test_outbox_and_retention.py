"""What the workers keep and clean up, on a real database: the webhook outbox (written with
the transition, claimed under a lease, retried, given up; the receiver behind
httpx.MockTransport) and stored Idempotency-Key answers (purged after their retention)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from payerbridge.bootstrap import Platform, build_platform
from payerbridge.config import load_settings
from payerbridge.exchange.model import ExchangeState, Move
from payerbridge.idempotency import ClaimStatus, StoredResponse
from payerbridge.routing.model import Partner
from payerbridge.types import OPERATOR, ExchangeId
from payerbridge.webhooks.delivery import deliver_due
from payerbridge.webhooks.model import DeliveryStatus, WebhookPolicy

T0 = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture
def platform(tmp_path: Path, database_env: Callable[[], dict[str, str]]) -> Iterator[Platform]:
    env = database_env()
    platform = build_platform(
        load_settings(data_dir=tmp_path, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))
    )
    platform.partners.register(
        Partner("old", "Old Plan", "1245319599", "http://old/fhir"), actor="test"
    )
    yield platform
    platform.close()


def record_exchange(platform: Platform, client_id: str) -> str:
    exchange_id = ExchangeId(f"ex-{client_id}")
    with platform.transactions.begin() as unit:
        platform.exchanges.create(
            unit,
            exchange_id=exchange_id,
            partner_id="old",
            client_id=client_id,
            request={},
            request_hash="h",
            at=T0,
            request_id=None,
            idempotency_key=None,
            deadline_at=None,
            policy_version="p",
            consent_id=None,
        )
    with platform.transactions.begin() as unit:
        platform.exchanges.advance(
            unit, exchange_id, [Move(ExchangeState.VALIDATED)], at=T0, actor="test"
        )
    return exchange_id


def test_deliveries_are_written_for_the_owner_and_the_operator_only(platform: Platform) -> None:
    mine = platform.webhooks.subscribe(client_id="portal", url="https://a/x", secret="s", at=T0)
    ops = platform.webhooks.subscribe(client_id=OPERATOR, url="https://b/x", secret="s", at=T0)
    platform.webhooks.subscribe(client_id="someone-else", url="https://c/x", secret="s", at=T0)
    record_exchange(platform, "portal")
    for subscription in (mine, ops):
        deliveries = platform.webhooks.deliveries(subscription.id, limit=10, offset=0)
        assert [(d.seq, d.status) for d in deliveries] == [
            (1, DeliveryStatus.PENDING),
            (2, DeliveryStatus.PENDING),
        ]
    assert platform.webhooks.pending_count() == 4


def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_runs_out(
    platform: Platform,
) -> None:
    platform.webhooks.subscribe(client_id="portal", url="https://a/x", secret="s", at=T0)
    record_exchange(platform, "portal")
    lease = timedelta(seconds=30)
    first = platform.webhooks.claim(now=T0, lease=lease, limit=10)
    assert [d.seq for d in first] == [1, 2] and all(d.attempts == 1 for d in first)
    assert platform.webhooks.claim(now=T0 + timedelta(seconds=29), lease=lease, limit=10) == []
    again = platform.webhooks.claim(now=T0 + timedelta(seconds=31), lease=lease, limit=10)
    assert [d.attempts for d in again] == [2, 2]  # the worker holding them died


def test_failures_are_retried_with_backoff_then_given_up(platform: Platform) -> None:
    platform.webhooks.subscribe(client_id="portal", url="https://a/x", secret="s", at=T0)
    record_exchange(platform, "portal")
    calls: list[httpx.Request] = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, headers={"Retry-After": "5"})

    policy = WebhookPolicy(max_attempts=3, base_delay_seconds=1, max_delay_seconds=60)
    now = [T0]
    with httpx.Client(transport=httpx.MockTransport(down)) as client:
        for _ in range(3):
            assert (
                deliver_due(
                    platform.webhooks, client, policy, clock=lambda: now[0], random=lambda: 0.5
                )
                == 2
            )
            assert (
                deliver_due(
                    platform.webhooks, client, policy, clock=lambda: now[0], random=lambda: 0.5
                )
                == 0
            )  # not due before Retry-After
            now[0] += timedelta(seconds=6)
        assert (
            deliver_due(platform.webhooks, client, policy, clock=lambda: now[0], random=lambda: 0.5)
            == 0
        )
    assert len(calls) == 6
    assert all(c.headers["payerbridge-signature"].startswith("t=") for c in calls)
    assert platform.webhooks.pending_count() == 0
    [subscription] = platform.webhooks.subscriptions("portal")
    deliveries = platform.webhooks.deliveries(subscription.id, limit=10, offset=0)
    assert {(d.status, d.attempts, d.last_status) for d in deliveries} == {
        (DeliveryStatus.FAILED, 3, 503)
    }


def test_stored_idempotent_answers_are_purged_after_their_retention(platform: Platform) -> None:
    store = platform.idempotency
    stale = timedelta(minutes=5)
    for key, at in (("old", T0), ("new", T0 + timedelta(hours=30))):
        claim = store.claim(
            "newplan", key, operation="everything", request_hash="h", now=at, stale_after=stale
        )
        assert claim.status is ClaimStatus.CLAIMED
        store.complete("newplan", key, StoredResponse(200, "application/fhir+json", "{}"), [])
    assert store.purge(before=T0 + timedelta(hours=24)) == 1
    # The purged key is a new call again; the kept one still replays its answer.
    again = store.claim(
        "newplan",
        "old",
        operation="everything",
        request_hash="h",
        now=T0 + timedelta(hours=31),
        stale_after=stale,
    )
    kept = store.claim(
        "newplan",
        "new",
        operation="everything",
        request_hash="h",
        now=T0 + timedelta(hours=31),
        stale_after=stale,
    )
    assert (again.status, kept.status) == (ClaimStatus.CLAIMED, ClaimStatus.ANSWERED)
