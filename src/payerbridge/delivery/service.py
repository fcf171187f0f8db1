"""Delivering a received record to the plan's FHIR server: the use cases the delivery
workflows run, each ``(command, uow)`` on a ``DestinationUnit`` (ADR 0051).

``open_deliveries`` makes one delivery per destination for an exchange run that stored
data (``completed``, ``partial`` and ``conflict`` all did: a partial record is what the
old payer had, a conflict one is kept with its conflicts noted);
``open_onboarding_deliveries``, for an onboarding that ended. ``deliver_once`` makes
one attempt: claim the delivery when due, plan the transactions of what the destination
does not already have from us unchanged (``bundle.plan_transactions``), post them in
order, each one taken committed with its resources' hashes before the next is posted,
so a run cut off anywhere (a crash, a recovered workflow, a replay) posts only what is
left. The posts happen outside any transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payerbridge.audit.model import AuditEvent
from payerbridge.consent.labels import labelled as label
from payerbridge.consent.labels import let_go
from payerbridge.delivery.bundle import Transaction, plan_transactions, reference_to
from payerbridge.delivery.model import (
    DeliveryReason,
    DeliveryRecord,
    DeliveryState,
    DestinationAnswer,
    DestinationPolicy,
    FailedAttempt,
    exchange_subject,
    next_attempt,
    onboarding_subject,
)
from payerbridge.delivery.unit import DestinationUnit
from payerbridge.exchange.model import DATA_ENDS
from payerbridge.fhir.resources import compartment_patient, iter_references
from payerbridge.fhir.shared import reach_shared, resource_key, shared_references
from payerbridge.types import ExchangeId

__all__ = [
    "DeliverOnce",
    "OpenDeliveries",
    "OpenOnboardingDeliveries",
    "deliver_once",
    "open_deliveries",
    "open_onboarding_deliveries",
]

logger = logging.getLogger(__name__)
_ACTOR = "system:delivery"


@dataclass(frozen=True)
class OpenDeliveries:
    exchange_id: ExchangeId


@dataclass(frozen=True)
class OpenOnboardingDeliveries:
    onboarding_id: str


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
    return _opened(uow, exchange_subject(record.id), record.replay_count)


def open_onboarding_deliveries(
    command: OpenOnboardingDeliveries, uow: DestinationUnit
) -> list[str]:
    """The deliveries of what an onboarding stored, one per destination, once it ended."""
    if not uow.destinations:
        return []
    return _opened(uow, onboarding_subject(command.onboarding_id), 0)


def _opened(uow: DestinationUnit, subject: str, run: int) -> list[str]:
    with uow:
        return [
            uow.deliveries.open(uow, subject=subject, destination_id=name, run=run)
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
    total = sum(record.written.values())  # what this delivery wrote on earlier attempts
    held_count = 0
    went = _let_go(uow, record.subject)
    for batch in uow.held.batches(record.subject):
        labelled = [
            label(r, sensitive=resource_key(r) not in went, segmentation=uow.segmentation)
            for r in _with_members(uow, batch)
        ]
        types = destination.types
        held = [r for r in labelled if types is None or r["resourceType"] in types]
        transactions = _planned(uow, record, held, policy)
        held_count += len(held)
        for transaction in transactions:
            answer = destination.post_transaction(transaction.as_bundle())
            if answer.retry:
                return _wait(uow, record, policy, answer)
            if not answer.written:
                _end(uow, record, DeliveryState.REFUSED, answer)
                return None
            with uow:
                store.wrote(
                    uow,
                    record.id,
                    hashes={e.ref: e.content_hash for e in transaction.entries},
                    conditional={e.ref for e in transaction.entries if e.url != e.ref},
                    counts=_written(transaction.counts, answer.found),
                )
            total += len(transaction.entries)
    # Unchanged: what the destination had from us before this delivery, not written again.
    _end(uow, record, DeliveryState.DELIVERED, None, unchanged=held_count - total)
    return None


def _written(counts: dict[str, int], found: Mapping[str, int]) -> dict[str, int]:
    """Per type, what the destination wrote of a transaction: less the conditional creates
    it answered with one it held (a member's Patient already there)."""
    return {kind: n - found.get(kind, 0) for kind, n in counts.items() if n > found.get(kind, 0)}


def _let_go(uow: DestinationUnit, subject: str) -> frozenset[str]:
    """What a regular consent lets go of ``subject`` (each batch judged whole, with the
    shared resources its records reach wherever they are held), read in a first pass:
    batches split members, not what they share. A claim in a later batch is judged with
    the program it names though that is held in the first; a shared resource goes when
    it goes with any member (one copy at the destination serves them all), and one that
    only withheld records reach is ``R`` there, as the plan's own reads label it."""
    went: set[str] = set()
    for batch in uow.held.batches(subject):
        whole = _with_members(uow, batch)
        went |= let_go([*whole, *_reached(uow, whole)], uow.segmentation)
    return frozenset(went)


def _reached(uow: DestinationUnit, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shared resources ``resources`` reach that they do not hold, read where held."""
    own = {key for r in resources if (key := resource_key(r)) is not None}
    start = (ref for r in resources for ref in shared_references(r))
    return reach_shared(start, _HeldReader(uow), own)


class _HeldReader:
    def __init__(self, uow: DestinationUnit) -> None:
        self._held = uow.held

    def read_many(self, refs: list[str]) -> list[dict[str, Any]]:
        return self._held.by_refs(refs)


def _with_members(uow: DestinationUnit, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batch with the Patient of each member whose records it holds: the plan's own
    (ADR 0054), which an exchange does not store again, goes too, as a conditional create
    (``bundle``), so that what refers to her resolves at the destination."""
    refs = {f"{r['resourceType']}/{r['id']}" for r in batch}
    owners = {f"Patient/{p}" for r in batch if (p := compartment_patient(r))} - refs
    found = uow.held.by_refs(sorted(owners)) if owners else []
    return [*batch, *(r for r in found if r["resourceType"] == "Patient")]


def _planned(
    uow: DestinationUnit,
    record: DeliveryRecord,
    held: list[dict[str, Any]],
    policy: DestinationPolicy,
) -> list[Transaction]:
    """The Bundles of one batch: what the destination does not have from us unchanged,
    references to what we wrote there before (outside the batch) named as it was."""
    refs = {f"{r['resourceType']}/{r['id']}" for r in held}
    outside = {t for r in held for t in iter_references(r) if t.count("/") == 1} - refs
    written = uow.deliveries.written(record.destination_id, sorted(refs | outside))
    hashes = {ref: digest for ref, (digest, _) in written.items() if ref in refs}
    known = {ref: conditional for ref, (_, conditional) in written.items() if ref in outside}
    found = {f"{r['resourceType']}/{r['id']}": r for r in uow.held.by_refs(sorted(outside))}
    elsewhere = {
        ref: reference_to(resource, conditional=known[ref])
        for ref, resource in found.items()
        if ref in known
    }
    return plan_transactions(
        held,
        written=hashes,
        elsewhere=elsewhere,
        max_entries=policy.max_entries,
        # What names nothing we hold was left unresolved by the old payer (bundle: logical).
        absent=frozenset(outside - set(known) - set(found)),
    )


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
            "subject": record.subject,
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
            "subject": record.subject,
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
    kind, _, entity_id = record.subject.partition(":")
    return AuditEvent(
        at=at,
        actor=_ACTOR,
        action=f"{kind}.delivery",
        entity_type=kind.capitalize(),
        entity_id=entity_id,
        outcome=outcome,
        detail=detail,
    )
