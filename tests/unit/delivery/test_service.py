"""Delivering a received record, one attempt at a time (``delivery.service``), on fakes:
what the destination took is never posted again, a destination that cannot take it now
is waited for within the budget, one that refuses ends the delivery."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence, Set
from datetime import datetime
from typing import Any

import pytest

from payerbridge.delivery.model import (
    DeliveryReason,
    DeliveryRecord,
    DeliveryState,
    DestinationAnswer,
    DestinationPolicy,
    delivery_id,
)
from payerbridge.delivery.service import DeliverOnce, deliver_once
from payerbridge.delivery.unit import DestinationUnit
from payerbridge.transactions import UnitOfWork
from tests.fakes import InMemoryAuditLog, InMemoryTransactions

EXCHANGE = "exchange:x1"


class Deliveries:
    """The ``DeliveryStore`` port in memory."""

    def __init__(self) -> None:
        self.rows: dict[str, DeliveryRecord] = {}
        self.hashes: dict[tuple[str, str], tuple[str, bool]] = {}

    def open(self, unit: UnitOfWork, *, subject: str, destination_id: str, run: int) -> str:
        key = delivery_id(subject, destination_id, run)
        self.rows.setdefault(
            key,
            DeliveryRecord(key, subject, destination_id, run, DeliveryState.PENDING, 0,
                           unit.now, None, None, None, (), None),
        )  # fmt: skip
        return key

    def claim(self, unit: UnitOfWork, delivery_id: str, *, now: datetime) -> DeliveryRecord | None:
        row = self.rows[delivery_id]
        if row.state in (DeliveryState.DELIVERED, DeliveryState.REFUSED, DeliveryState.FAILED):
            return None
        if row.next_at is not None and row.next_at > now:
            return None
        row = dataclasses.replace(
            row, state=DeliveryState.DELIVERING, attempts=row.attempts + 1,
            started_at=row.started_at or now, next_at=now,
        )  # fmt: skip
        self.rows[delivery_id] = row
        return row

    def due(self, delivery_id: str) -> datetime | None:
        row = self.rows[delivery_id]
        return None if row.ended_at else row.next_at

    def overdue(self, *, before: datetime, limit: int = 1000) -> list[str]:
        return []

    def of_subject(self, subject: str) -> list[DeliveryRecord]:
        return [r for r in self.rows.values() if r.subject == subject]

    def written(self, destination_id: str, refs: Sequence[str]) -> dict[str, tuple[str, bool]]:
        return {r: h for (d, r), h in self.hashes.items() if d == destination_id and r in refs}

    def wrote(self, unit: UnitOfWork, delivery_id: str, *, hashes: Mapping[str, str],
              conditional: Set[str], counts: Mapping[str, int]) -> None:  # fmt: skip
        row = self.rows[delivery_id]
        self.hashes.update(
            {(row.destination_id, ref): (h, ref in conditional) for ref, h in hashes.items()}
        )
        written = dict(row.written)
        for kind, n in counts.items():
            written[kind] = written.get(kind, 0) + n
        self.rows[delivery_id] = dataclasses.replace(row, written=written)

    def wait(self, unit: UnitOfWork, delivery_id: str, *, until: datetime, error: str) -> None:
        row = self.rows[delivery_id]
        self.rows[delivery_id] = dataclasses.replace(
            row, state=DeliveryState.WAITING, next_at=until
        )

    def end(
        self,
        unit: UnitOfWork,
        delivery_id: str,
        *,
        state: DeliveryState,
        answer: DestinationAnswer | None = None,
        unchanged: int = 0,
    ) -> DeliveryRecord:
        row = dataclasses.replace(
            self.rows[delivery_id], state=state, ended_at=unit.now, next_at=None,
            unchanged=unchanged,
            reason_code=answer.reason.value if answer and answer.reason else None,
            issue_codes=answer.issue_codes if answer else (),
        )  # fmt: skip
        self.rows[delivery_id] = row
        return row


class Held:
    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self.resources = resources

    def batches(self, subject: str) -> Iterator[list[dict[str, Any]]]:
        yield self.resources

    def by_refs(self, refs: Sequence[str]) -> list[dict[str, Any]]:
        return [r for r in self.resources if f"{r['resourceType']}/{r['id']}" in refs]


class Server:
    """A destination that answers from a script, then takes everything; the Bundles it
    took, entry by entry."""

    id = "plan"
    types = None

    def __init__(self, *answers: DestinationAnswer) -> None:
        self.answers = list(answers)
        self.taken: list[str] = []

    def post_transaction(self, bundle: dict[str, Any]) -> DestinationAnswer:
        taken = DestinationAnswer(written=True, status=200)
        answer = self.answers.pop(0) if self.answers else taken
        if answer.written:
            self.taken += [e["request"]["url"] for e in bundle["entry"]]
        return answer


def _record(n: int) -> list[dict[str, Any]]:
    patient = {"resourceType": "Patient", "id": "p"}
    conditions = [
        {"resourceType": "Condition", "id": f"c{i}", "subject": {"reference": "Patient/p"}}
        for i in range(n)
    ]
    return [patient, *conditions]


def _unit(
    server: Server, held: Held, budget: float = 60.0
) -> tuple[DestinationUnit, Deliveries, Any]:
    deliveries = Deliveries()
    transactions = InMemoryTransactions(InMemoryAuditLog(), deliveries)
    unit = DestinationUnit(
        transactions, deliveries, None, held,  # type: ignore[arg-type]
        {"plan": server}, {"plan": DestinationPolicy(budget_seconds=budget, max_entries=2)},
        random=lambda: 0.5,
    )  # fmt: skip
    return unit, deliveries, transactions.clock


def _open(unit: DestinationUnit) -> str:
    with unit:
        return unit.deliveries.open(unit, subject=EXCHANGE, destination_id="plan", run=0)


def test_a_run_cut_off_posts_only_what_the_destination_did_not_take() -> None:
    unavailable = DestinationAnswer(retry=True, status=503, retry_after=5)
    server = Server(DestinationAnswer(written=True), unavailable)  # the 2nd Bundle waits
    unit, deliveries, clock = _unit(server, Held(_record(5)))
    key = _open(unit)
    due = deliver_once(DeliverOnce(key), unit)
    assert due is not None and deliveries.rows[key].state is DeliveryState.WAITING
    first = list(server.taken)
    assert len(first) == 2  # one Bundle of two taken, committed with its hashes
    assert deliver_once(DeliverOnce(key), unit) == due  # not due yet: nothing posted
    clock.advance((due - clock()).total_seconds())
    assert deliver_once(DeliverOnce(key), unit) is None
    row = deliveries.rows[key]
    assert row.state is DeliveryState.DELIVERED and row.attempts == 2
    assert sorted(server.taken) == sorted(set(server.taken))  # nothing twice
    assert len(server.taken) == 6 and row.written == {"Condition": 5, "Patient": 1}
    assert row.unchanged == 0  # what it wrote on its first attempt is its own
    # A replay of the same record: everything is there unchanged, nothing is posted.
    with unit:
        again = unit.deliveries.open(unit, subject=EXCHANGE, destination_id="plan", run=1)
    assert deliver_once(DeliverOnce(again), unit) is None
    assert len(server.taken) == 6 and deliveries.rows[again].unchanged == 6


@pytest.mark.parametrize(
    ("answer", "state", "reason"),
    [
        (DestinationAnswer(status=422, reason=DeliveryReason.REFUSED, issue_codes=("invalid",)),
         DeliveryState.REFUSED, "destination-refused"),
        (DestinationAnswer(status=401, reason=DeliveryReason.AUTH_REFUSED),
         DeliveryState.REFUSED, "destination-auth-refused"),
    ],
)  # fmt: skip
def test_a_refusal_ends_the_delivery_with_its_reason(
    answer: DestinationAnswer, state: DeliveryState, reason: str
) -> None:
    unit, deliveries, _ = _unit(Server(answer), Held(_record(1)))
    key = _open(unit)
    assert deliver_once(DeliverOnce(key), unit) is None
    assert (deliveries.rows[key].state, deliveries.rows[key].reason_code) == (state, reason)


def test_a_destination_down_past_the_budget_fails_the_delivery() -> None:
    down = DestinationAnswer(retry=True, status=503)
    unit, deliveries, clock = _unit(Server(*[down] * 50), Held(_record(1)), budget=20)
    key = _open(unit)
    while (due := deliver_once(DeliverOnce(key), unit)) is not None:
        clock.advance(max((due - clock()).total_seconds(), 0))
    row = deliveries.rows[key]
    assert row.state is DeliveryState.FAILED and row.reason_code == "destination-unavailable"
    assert 2 < row.attempts < 50


def test_a_conditional_create_answered_with_the_destinations_own_is_not_written() -> None:
    found = DestinationAnswer(written=True, status=200, found={"Patient": 1})
    unit, deliveries, _ = _unit(Server(found), Held(_record(1)))
    key = _open(unit)
    assert deliver_once(DeliverOnce(key), unit) is None
    row = deliveries.rows[key]
    assert row.state is DeliveryState.DELIVERED and row.written == {"Condition": 1}
