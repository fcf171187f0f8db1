"""Webhooks on exchange state changes (pure: no I/O, no clock, no randomness).

A client subscribes a URL; every transition of an exchange it submitted (an operator's
subscription: of every exchange) becomes one delivery, written in the transaction of the
transition itself, so a change is never recorded without its notification nor notified
without being recorded. Deliveries are retried with full-jitter backoff until the
receiver answers 2xx or the attempts run out.

Receivers authenticate a delivery by its signature, computed as Stripe and GitHub do:

    Payerbridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

and drop repeats by ``Payerbridge-Delivery`` (a retried delivery keeps its id). The
body says which exchange changed and how, never anything about the member.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from payerbridge.exchange.calls.retry import full_jitter_delay
from payerbridge.types import ClientId, ExchangeId

__all__ = [
    "EVENT_TYPE",
    "SIGNATURE_HEADER",
    "StateChange",
    "Delivery",
    "DeliveryStatus",
    "Subscription",
    "WebhookPolicy",
    "event_body",
    "next_attempt",
    "sign",
    "verify",
]

EVENT_TYPE = "exchange.state-changed"
SIGNATURE_HEADER = "Payerbridge-Signature"
DELIVERY_HEADER = "Payerbridge-Delivery"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # attempts exhausted


@dataclass(frozen=True)
class Subscription:
    id: str
    client_id: ClientId
    url: str
    created_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True)
class Delivery:
    id: str
    subscription_id: str
    exchange_id: ExchangeId
    seq: int
    body: bytes
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    url: str = ""  # the subscription's, when claimed for sending
    secret: str = ""


@dataclass(frozen=True)
class WebhookPolicy:
    max_attempts: int = 8
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 300.0
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class StateChange:
    """One transition of an exchange, as its webhook event tells it: the exchange, the
    transition's place in its history (``seq``), from and to which state, when (UTC,
    ISO 8601) and its reason code."""

    exchange_id: ExchangeId
    seq: int
    from_state: str | None
    to_state: str
    at: str
    reason_code: str | None


def event_body(delivery_id: str, change: StateChange) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "type": EVENT_TYPE,
        "exchange": {
            "id": change.exchange_id,
            "seq": change.seq,
            "from": change.from_state,
            "state": change.to_state,
            "at": change.at,
            "reason_code": change.reason_code,
            "href": f"/exchanges/{change.exchange_id}",
        },
    }


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Payerbridge-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance: int = 300) -> bool:
    """What a receiver does: the signature matches and is recent (no replays from
    long ago)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, timestamp, body)
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(expected, header)


def next_attempt(
    policy: WebhookPolicy,
    *,
    attempt: int,
    now: datetime,
    retry_after_seconds: float | None,
    unit_random: float,
) -> datetime | None:
    """After failed attempt number ``attempt``: when to try again (full jitter, at least
    ``Retry-After``), or None when the attempts are spent."""
    if attempt >= policy.max_attempts:
        return None
    delay = max(full_jitter_delay(policy, attempt, unit_random), retry_after_seconds or 0.0)
    return now + timedelta(seconds=min(delay, policy.max_delay_seconds))
