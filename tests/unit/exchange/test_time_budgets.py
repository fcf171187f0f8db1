"""Exchanges outlasting a partner's outage on the in-memory ports (ADR 0047), with
hypothesis: several exchanges run as their workflows would (each run until it waits,
then again when due, on a fake clock) against a partner down for a while. Whatever the
outage, no exchange calls at or past its deadline, a parked one spends no attempt, the
endpoint is probed at most once per interval whatever the number waiting, and an
exchange ends dead-lettered only when its deadline came (``deadline-exceeded``)."""

from __future__ import annotations

import heapq
import itertools
from datetime import datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.api.schemas import ExchangeCreate
from payerbridge.errors import PartnerUnavailable
from payerbridge.exchange.calls.circuit import probe_due_breakers
from payerbridge.exchange.model import ExchangeRequest, ExchangeState, RetryPolicy
from payerbridge.exchange.ports import ProbeAnswer, RecordRead, Retrieved
from payerbridge.exchange.steps.machine import proceed
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.fhir.member_match import MemberMatchResult
from payerbridge.routing.model import Partner
from payerbridge.routing.operations import Operations
from payerbridge.types import ExchangeId
from tests.builders import (
    a_coverage,
    a_patient,
    a_submitted_exchange,
    an_exchange_request,
    unit_with,
)
from tests.fakes import (
    FakeClock,
    FakePartnerClient,
    InMemoryPartnerDirectory,
)
from tests.unit.exchange.test_service import _ports as service_ports

S = ExchangeState
OLD_PLAN = Partner("old-plan", "Old Plan", "1245319599", "http://old/fhir")
BUNDLE = orjson.dumps(
    {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": a_patient()}, {"resource": a_coverage()}],
    }
)
INTERVAL, TIMEOUT, THRESHOLD = 30.0, 5.0, 3
_OPENED = ("breaker.opened", "closed")  # the breaker opening after a run of failures
POLICY = RetryPolicy(
    base_delay_seconds=1.0,
    max_delay_seconds=10.0,
    longest_delay_seconds=10.0,
    call_timeout_seconds=TIMEOUT,
    breaker_failure_threshold=THRESHOLD,
    breaker_cooldown_seconds=INTERVAL,
)


class DownPartner(FakePartnerClient):
    """A partner that refuses connections from ``down_from`` to ``down_until`` (clock
    time), counting every call it is sent and every probe, and when."""

    def __init__(self, clock: FakeClock, down_from: datetime, down_until: datetime) -> None:
        super().__init__(match=MemberMatchResult("urn:umb", "U1", "Patient/p1"), bundle=BUNDLE)
        self.clock, self.down_from, self.down_until = clock, down_from, down_until
        self.sent: list[tuple[datetime, str]] = []  # (when, idempotency key)
        self.probed: list[datetime] = []

    def is_down(self) -> bool:
        return self.down_from <= self.clock.now < self.down_until

    def _call(self, operation: str, key: str) -> None:
        self.sent.append((self.clock.now, key))
        super()._call(operation, key)
        if self.is_down():
            raise PartnerUnavailable("the partner is unreachable (ConnectError)")

    def probe(self, partner: Partner, *, timeout: float) -> ProbeAnswer:
        self.probed.append(self.clock.now)
        if self.is_down():
            return ProbeAnswer(False, None, "ConnectError", 1)
        return ProbeAnswer(True, 200, None, 1)

    def everything(self, partner: Partner, read: RecordRead) -> Retrieved:
        return super().everything(partner, read)


def _ports(client: FakePartnerClient, clock: FakeClock, partner: Partner) -> ExchangeUnit:
    """The service tests' in-memory unit, with this partner and these time budgets."""
    partners = InMemoryPartnerDirectory(partner)
    return unit_with(service_ports(client, clock), partners=partners, retry_policy=POLICY)


def _parse(raw: dict[str, Any]) -> ExchangeRequest:
    return ExchangeCreate.model_validate(raw).to_domain()


def _run(ports: ExchangeUnit, clock: FakeClock, starts: list[float]) -> list[ExchangeId]:
    """Submit an exchange at each of ``starts`` (seconds from now) and run every one as
    its workflow would, in time order, until all have stopped; the upkeep sweep probes
    due breakers every 30 s meanwhile."""
    t0 = clock.now
    due: list[tuple[datetime, int, str]] = []
    order = itertools.count()
    for offset in starts:
        heapq.heappush(due, (t0 + timedelta(seconds=offset), next(order), "submit"))
    sweep = t0
    while sweep < t0 + timedelta(hours=2):
        sweep += timedelta(seconds=30)
        heapq.heappush(due, (sweep, next(order), "sweep"))
    submitted: list[ExchangeId] = []
    stopped: set[str] = set()
    for _ in range(20_000):
        if len(stopped) == len(starts):
            return submitted
        at, _, what = heapq.heappop(due)
        clock.now = max(clock.now, at)
        if what == "sweep":
            probe_due_breakers(ports)
            continue
        if what == "submit":
            what = a_submitted_exchange(ports, an_exchange_request(), client_id="newplan")
            submitted.append(ExchangeId(what))
        result = proceed(ports, ExchangeId(what), _parse)
        if result.done or result.retry_at is None:
            stopped.add(what)
        else:
            heapq.heappush(due, (result.retry_at, next(order), what))
    raise AssertionError("the exchanges did not all stop")


@settings(max_examples=60)
@given(
    down_from=st.floats(0, 200),
    outage=st.floats(0, 1500),
    budget=st.floats(60, 900),
    starts=st.lists(st.floats(0, 300), min_size=1, max_size=5),
)
def test_exchanges_outlast_an_outage_within_their_deadline_spending_no_attempt_parked(
    down_from: float, outage: float, budget: float, starts: list[float]
) -> None:
    clock = FakeClock()
    t0 = clock.now
    down = t0 + timedelta(seconds=down_from)
    up = down + timedelta(seconds=outage)
    partner = Partner(
        OLD_PLAN.id,
        OLD_PLAN.name,
        OLD_PLAN.npi,
        OLD_PLAN.base_url,
        operations=Operations(exchange_budget_seconds=budget),
    )
    client = DownPartner(clock, down, up)
    ports = _ports(client, clock, partner)

    exchanges = _run(ports, clock, starts)

    # One probe per interval at most, however many exchanges were parked on the breaker.
    assert all(b - a >= timedelta(seconds=INTERVAL) for a, b in itertools.pairwise(client.probed))
    # While it was down, the breaker held every call back once it had opened.
    assert sum(1 for at, _ in client.sent if down <= at < up) <= THRESHOLD
    margin = timedelta(seconds=INTERVAL + POLICY.max_delay_seconds + TIMEOUT + 5)
    for exchange_id in exchanges:
        record = ports.exchanges.get(exchange_id)
        deadline = record.deadline_at
        assert deadline is not None
        calls = [at for at, key in client.sent if key.startswith(f"{exchange_id}:")]
        assert all(at < deadline for at in calls), "a call at or past the deadline"
        events = ports.audit.for_entity("Exchange", exchange_id)  # type: ignore[attr-defined]
        parked = [e for e in events if e["outcome"] == "parked"]
        openings = ports.audit.for_entity("PartnerEndpoint", OLD_PLAN.fhir_base)  # type: ignore[attr-defined]
        opened = [
            e
            for e in openings
            if (e["action"], e["detail"]["from"]) == ("breaker.opened", "closed")
        ]
        assert len(parked) <= len(opened)  # one park event per outage, not one per look
        if record.state is S.DEAD_LETTERED:
            letter = ports.exchanges.dead_letter(exchange_id)
            assert letter is not None and letter.reason_code == "deadline-exceeded"
            assert letter.dead_lettered_at <= deadline
            step_key = f"{exchange_id}:{letter.step}"
            assert letter.attempts == sum(1 for _, key in client.sent if key == step_key)
            assert up > deadline - margin, "the partner was back in time to finish"
        else:
            assert record.state is S.COMPLETED, (record.state, record.error_code)


def test_a_parked_exchange_is_told_why_and_when_it_looks_again_and_resumes_on_the_probe() -> None:
    clock = FakeClock()
    t0 = clock.now
    client = DownPartner(clock, t0, t0 + timedelta(seconds=100))
    ports = _ports(client, clock, OLD_PLAN)
    first, *others = [
        a_submitted_exchange(ports, an_exchange_request(), client_id="newplan") for _ in range(4)
    ]
    for _ in range(THRESHOLD):  # the first one's calls open the breaker
        result = proceed(ports, ExchangeId(first), _parse)
        assert result.retry_at is not None
        clock.now = result.retry_at
    waits = [proceed(ports, ExchangeId(e), _parse) for e in others]
    record = ports.exchanges.current(ExchangeId(others[0]))
    assert record.attempts == 0 and record.state is S.ROUTE_SELECTED
    assert "circuit" in (record.last_error or "")
    clock.now = max(w.retry_at for w in waits if w.retry_at is not None)
    parked = proceed(ports, ExchangeId(others[0]), _parse)  # the probe: still down
    assert client.probed == [clock.now] and parked.retry_at is not None
    event = ports.audit.for_entity("Exchange", others[0])[-1]  # type: ignore[attr-defined]
    assert (event["action"], event["outcome"]) == ("exchange.attempt", "parked")
    assert event["detail"]["reason"] == "circuit-open"
    assert event["detail"]["next_attempt_at"] and event["detail"]["deadline_at"]
    assert ports.exchanges.current(ExchangeId(others[0])).attempts == 0

    clock.now = t0 + timedelta(seconds=101)  # back; the next probe is due after this
    for exchange_id in [first, *others]:
        result = proceed(ports, ExchangeId(exchange_id), _parse)
        while not result.done and result.retry_at is not None:
            clock.now = max(clock.now, result.retry_at)
            result = proceed(ports, ExchangeId(exchange_id), _parse)
        assert result.state is S.COMPLETED
    assert len(client.probed) == 2  # one more, which found it answering: not one each
