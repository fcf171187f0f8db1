"""Webhook subscriptions: a client's URL told of its exchanges' state changes.

The signing secret is returned once, when the subscription is created; deliveries are
signed with it (see ``webhooks.model``) and can be followed per subscription.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from payerbridge.api.deps import SubmitterDep
from payerbridge.api.responses import JsonResponse
from payerbridge.api.units import WebhookUnitDep
from payerbridge.timestamps import utc_iso
from payerbridge.webhooks import subscriptions
from payerbridge.webhooks.model import (
    DELIVERY_HEADER,
    EVENT_TYPE,
    SIGNATURE_HEADER,
    Delivery,
    Subscription,
)

__all__ = ["router"]

router = APIRouter(prefix="/webhooks", default_response_class=JsonResponse, tags=["webhooks"])


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str = Field(max_length=2000, description="Where to POST each state change.")


def _public(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "url": subscription.url,
        "event": EVENT_TYPE,
        "created_at": utc_iso(subscription.created_at),
        "disabled_at": utc_iso(subscription.disabled_at) if subscription.disabled_at else None,
    }


def _delivery_public(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "exchange_id": delivery.exchange_id,
        "seq": delivery.seq,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "next_attempt_at": utc_iso(delivery.next_attempt_at),
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "delivered_at": utc_iso(delivery.delivered_at) if delivery.delivered_at else None,
    }


@router.post("", status_code=201)
def subscribe(body: WebhookCreate, uow: WebhookUnitDep, caller: SubmitterDep) -> dict[str, Any]:
    """Subscribe a URL to the state changes of the caller's exchanges (the operator's:
    of every exchange). The secret is shown only in this answer."""
    secret = secrets.token_urlsafe(32)
    subscription = subscriptions.subscribe(
        subscriptions.Subscribe(caller.owner, body.url, secret), uow
    )
    return {
        **_public(subscription),
        "secret": secret,
        "signature": {
            "header": SIGNATURE_HEADER,
            "scheme": "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, '<t>.<raw body>')>",
            "delivery_id_header": DELIVERY_HEADER,
        },
    }


@router.get("")
def list_subscriptions(uow: WebhookUnitDep, caller: SubmitterDep) -> dict[str, Any]:
    items = uow.webhooks.subscriptions(caller.owner)
    return {"count": len(items), "items": [_public(s) for s in items]}


@router.get("/{subscription_id}")
def get_subscription(
    subscription_id: str, uow: WebhookUnitDep, caller: SubmitterDep
) -> dict[str, Any]:
    return _public(uow.webhooks.subscription(subscription_id, caller.owner))


@router.get("/{subscription_id}/deliveries")
def list_deliveries(
    subscription_id: str,
    uow: WebhookUnitDep,
    caller: SubmitterDep,
    count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 100,
    offset: Annotated[int, Query(alias="_offset", ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """What was sent to the subscription, oldest first: status, attempts, last answer."""
    uow.webhooks.subscription(subscription_id, caller.owner)  # yours, or 404
    items = uow.webhooks.deliveries(subscription_id, limit=count, offset=offset)
    return {"offset": offset, "count": len(items), "items": [_delivery_public(d) for d in items]}


@router.delete("/{subscription_id}")
def unsubscribe(subscription_id: str, uow: WebhookUnitDep, caller: SubmitterDep) -> dict[str, Any]:
    """Stop deliveries; deliveries not yet made are marked failed, nothing is deleted."""
    command = subscriptions.Unsubscribe(subscription_id, caller.owner)
    return _public(subscriptions.unsubscribe(command, uow))
