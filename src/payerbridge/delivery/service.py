"""Delivering an exchange's received record to the plan's FHIR server: the use cases
the delivery workflows run, each ``(command, uow)`` on a ``DestinationUnit`` (ADR 0051).

``open_deliveries`` makes one delivery per destination for an exchange run that stored
data (``completed``, ``partial`` and ``conflict`` all did: a partial record is what the
old payer had, a conflict one is kept with its conflicts noted). ``deliver_once`` makes
one attempt: claim the delivery when due, plan the transactions of what the destination
does not already have from us unchanged (``bundle.plan_transactions``), post them in
order, each one taken committed with its resources' hashes before the next is posted,
so a run cut off anywhere (a crash, a recovered workflow, a replay) posts only what is
left. The posts happen outside any transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from payerbridge.audit.model import AuditEvent
from payerbridge.delivery.bundle import plan_transactions
from payerbridge.delivery.model import (
    DeliveryReason,
    DeliveryRecord,
    DeliveryState,
    DestinationAnswer,
    DestinationPolicy,
    FailedAttempt,
    next_attempt,
)
from payerbridge.delivery.unit import DestinationUnit
from payerbridge.exchange.model import DATA_ENDS
from payerbridge.types import ExchangeId

__all__ = ["DeliverOnce", "OpenDeliveries", "deliver_once", "open_deliveries"]

logger = logging.getLogger(__name__)
_ACTOR = "system:delivery"


@dataclass(frozen=True)
class OpenDeliveries:
    exchange_id: ExchangeId


@dataclass(frozen=True)
class DeliverOnce:
    delivery_id: str


def open_deliveries(command: OpenDeliveries, uow: DestinationUnit) -> list[str]:
    """The deliveries of the exchange's current run, one per destination (none when the
    exchange stored no data, or no destination is configured)."""
    if not uow.destinations:
        return []
    record = uow.exchanges.current(command.exchange_id)
    if record.state not in DATA_ENDS:
        return []
    with uow:
        return [
            uow.deliveries.open(
                uow, exchange_id=record.id, destination_id=name, run=record.replay_count
            )
            for name in sorted(uow.destinations)
        ]


def deliver_once(command: DeliverOnce, uow: DestinationUnit) -> datetime | None:
    """One attempt at the delivery if it is due: when it is due again, or None once it
    has ended."""
    store = uow.deliveries
    with uow:
        record = store.claim(uow, command.delivery_id, now=uow.now)
    if record is None:
        return store.due(command.delivery_id)
    destination = uow.destinations.get(record.destination_id)
    if destination is None:  # taken out of the sources file since
        gone = DestinationAnswer(reason=DeliveryReason.UNAVAILABLE, error="no longer configured")
        _end(uow, record, DeliveryState.FAILED, gone)
        return None
    policy = uow.policies.get(record.destination_id, DestinationPolicy())
    held = [
        r
        for r in uow.held.of_exchange(record.exchange_id)
        if destination.types is None or r.get("resourceType") in destination.types
    ]
    refs = [f"{r['resourceType']}/{r['id']}" for r in held]
    written = store.written_hashes(record.destination_id, refs)
    transactions = plan_transactions(held, written=written, max_entries=policy.max_entries)
    unchanged = len(held) - sum(len(t.entries) for t in transactions)
    for transaction in transactions:
        answer = destination.post_transaction(transaction.as_bundle())
        if answer.written:
            with uow:
                store.wrote(
                    uow,
                    record.id,
                    hashes={e.ref: e.content_hash for e in transaction.entries},
                    counts=transaction.counts,
                )
            continue
        if answer.retry:
            return _wait(uow, record, policy, answer)
        _end(uow, record, DeliveryState.REFUSED, answer)
        return None
    _end(uow, record, DeliveryState.DELIVERED, None, unchanged=unchanged)
    return None


def _wait(
    uow: DestinationUnit,
    record: DeliveryRecord,
    policy: DestinationPolicy,
    answer: DestinationAnswer,
) -> datetime | None:
    with uow:
        failed = FailedAttempt(record.attempts, record.started_at or uow.now, answer.retry_after)
        due = next_attempt(policy, failed, now=uow.now, unit_random=uow.random())
        if due is not None:
            uow.deliveries.wait(uow, record.id, until=due, error=answer.error)
            uow.record(_event(uow.now, record, DeliveryState.WAITING.value, answer))
    if due is None:
        spent = DestinationAnswer(
            reason=DeliveryReason.UNAVAILABLE, status=answer.status, error=answer.error
        )
        _end(uow, record, DeliveryState.FAILED, spent)
        return None
    logger.info(
        "delivery waits for its destination",
        extra={
            "delivery_id": record.id,
            "exchange_id": record.exchange_id,
            "status": answer.status,
        },
    )
    return due


def _end(
    uow: DestinationUnit,
    record: DeliveryRecord,
    state: DeliveryState,
    answer: DestinationAnswer | None,
    *,
    unchanged: int = 0,
) -> None:
    with uow:
        ended = uow.deliveries.end(uow, record.id, state=state, answer=answer, unchanged=unchanged)
        uow.record(_event(uow.now, ended, state.value, answer))
    logger.info(
        "delivery ended",
        extra={
            "delivery_id": record.id,
            "exchange_id": record.exchange_id,
            "state": state.value,
            "reason_code": answer.reason.value if answer and answer.reason else None,
        },
    )


def _event(
    at: datetime, record: DeliveryRecord, outcome: str, answer: DestinationAnswer | None
) -> AuditEvent:
    detail: dict[str, object] = {
        "destination": record.destination_id,
        "run": record.run,
        "attempt": record.attempts,
        "written": dict(sorted(record.written.items())),
    }
    if answer is not None:
        detail |= {
            "status": answer.status,
            "reason_code": answer.reason.value if answer.reason else None,
            "issue_codes": list(answer.issue_codes),
            "outcome_hash": answer.outcome_hash,
        }
    return AuditEvent(
        at=at,
        actor=_ACTOR,
        action="exchange.delivery",
        entity_type="Exchange",
        entity_id=record.exchange_id,
        outcome=outcome,
        detail=detail,
    )
