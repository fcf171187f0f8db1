"""A partner with several endpoints (ADR 0060), on the in-memory ports with hypothesis:
endpoints with generated priorities and statuses, each down for a generated while.
Whatever they are, no call ever goes to an endpoint that is off; within one attempt the
endpoints are tried in priority order and the first that answers ends it; an exchange
with an endpoint up from the start completes at once; and the route names every
endpoint with why it is first, next or skipped."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.errors import PartnerUnavailable
from payerbridge.exchange.model import ExchangeState
from payerbridge.exchange.ports import ProbeAnswer, RecordRead, Retrieved
from payerbridge.fhir.member_match import MemberMatchResult
from payerbridge.routing.endpoints import EndpointStatus, PartnerEndpoint, plan_endpoints
from payerbridge.routing.model import MaintenanceWindow, Partner
from payerbridge.routing.operations import Operations
from payerbridge.types import ExchangeId
from tests.fakes import FakeClock, FakePartnerClient
from tests.unit.exchange.test_time_budgets import BUNDLE, _ports, _run

S = ExchangeState
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=FakeClock().now.tzinfo)


class Endpoints(FakePartnerClient):
    """A partner whose endpoints are down while ``down[base]`` says (seconds from the
    start, a half-open span), recording every call: when, under which idempotency key,
    at which endpoint, and whether it answered."""

    def __init__(self, clock: FakeClock, down: dict[str, tuple[float, float]]) -> None:
        super().__init__(match=MemberMatchResult("urn:umb", "U1", "Patient/p1"), bundle=BUNDLE)
        self.clock, self.down, self.t0 = clock, down, clock.now
        self.sent: list[tuple[datetime, str, str, bool]] = []

    def _is_down(self, partner: Partner) -> bool:
        start, end = self.down.get(partner.fhir_base, (0.0, 0.0))
        elapsed = (self.clock.now - self.t0).total_seconds()
        return start <= elapsed < end

    def _at(self, partner: Partner, key: str) -> None:
        down = self._is_down(partner)
        self.sent.append((self.clock.now, key, partner.fhir_base, not down))
        if down:
            raise PartnerUnavailable(f"{partner.fhir_base} is unreachable (ConnectError)")

    def probe(self, partner: Partner, *, timeout: float) -> ProbeAnswer:
        if self._is_down(partner):
            return ProbeAnswer(False, None, "ConnectError", 1)
        return ProbeAnswer(True, 200, None, 1)

    def member_match(self, partner: Partner, parameters, *, idempotency_key, timeout=None):  # type: ignore[no-untyped-def]
        self._at(partner, idempotency_key)
        return super().member_match(
            partner, parameters, idempotency_key=idempotency_key, timeout=timeout
        )

    def everything(self, partner: Partner, read: RecordRead) -> Retrieved:
        self._at(partner, read.idempotency_key)
        return super().everything(partner, read)


@dataclass(frozen=True)
class _Endpoint:
    priority: int
    off: bool
    down: tuple[float, float]


_ENDPOINT = st.builds(
    _Endpoint,
    priority=st.integers(-3, 3),
    off=st.booleans(),
    down=st.tuples(st.floats(0, 300), st.floats(0, 900)).map(lambda d: (d[0], d[0] + d[1])),
)


def _partner(endpoints: list[_Endpoint]) -> Partner:
    listed = tuple(
        PartnerEndpoint(
            f"http://site{n}/fhir",
            e.priority,
            EndpointStatus.OFF if e.off else EndpointStatus.ACTIVE,
            note="the directory says suspended" if e.off else None,
        )
        for n, e in enumerate(endpoints)
    )
    return Partner(
        "old-plan",
        "Old Plan",
        "1245319599",
        "",
        operations=Operations(exchange_budget_seconds=600),
        endpoints=listed,
    )


@settings(max_examples=30, deadline=None)
@given(
    endpoints=st.lists(_ENDPOINT, min_size=1, max_size=4).filter(
        lambda es: any(not e.off for e in es)
    ),
    starts=st.lists(st.floats(0, 200), min_size=1, max_size=3),
)
def test_calls_go_only_to_active_endpoints_in_priority_order_and_fail_over(
    endpoints: list[_Endpoint], starts: list[float]
) -> None:
    clock = FakeClock()
    partner = _partner(endpoints)
    down = {e.base: spec.down for e, spec in zip(partner.endpoints, endpoints, strict=True)}
    client = Endpoints(clock, down)
    ports = _ports(client, clock, partner)

    exchanges = _run(ports, clock, starts)

    # The oracle, from what was generated: the endpoints not off, by priority then place.
    order = sorted(range(len(endpoints)), key=lambda n: (endpoints[n].priority, n))
    active = [partner.endpoints[n].base for n in order if not endpoints[n].off]
    assert {base for _, _, base, _ in client.sent} <= set(active), (
        "a call to an endpoint that is off"
    )
    # One attempt (an exchange's step at one time): the endpoints it called are in
    # priority order, each before the last did not answer, and it stopped at the first
    # that answered.
    attempts: dict[tuple[datetime, str], list[tuple[str, bool]]] = {}
    for at, key, base, answered in client.sent:
        attempts.setdefault((at, key), []).append((base, answered))
    for called in attempts.values():
        bases = [base for base, _ in called]
        assert bases == sorted(bases, key=active.index), bases
        assert not any(answered for _, answered in called[:-1]), called
    always_up = [
        e.base for e, spec in zip(partner.endpoints, endpoints, strict=True)
        if not spec.off and spec.down[0] >= spec.down[1]
    ]  # fmt: skip
    for exchange_id in exchanges:
        record = ports.exchanges.get(ExchangeId(exchange_id))
        if always_up:
            assert record.state is S.COMPLETED, (record.state, record.error_code)
        events = ports.audit.for_entity("Exchange", exchange_id)
        routed = next((e for e in events if e["outcome"] == "route_selected"), None)
        assert routed is not None
        if len(partner.endpoints) > 1:
            named = [item["url"] for item in routed["detail"]["route"]["endpoints"]]
            assert sorted(named) == sorted(e.url for e in partner.endpoints)


def test_the_first_endpoint_stopped_the_exchange_completes_on_the_second_at_once() -> None:
    clock = FakeClock()
    partner = _partner([_Endpoint(0, False, (0, 10_000)), _Endpoint(1, False, (0, 0))])
    client = Endpoints(clock, {"http://site0/fhir": (0, 10_000)})
    ports = _ports(client, clock, partner)

    [exchange_id] = _run(ports, clock, [0])

    record = ports.exchanges.get(exchange_id)
    assert record.state is S.COMPLETED
    assert [(key.split(":")[1], base) for _, key, base, _ in client.sent] == [
        ("member-match", "http://site0/fhir"),
        ("member-match", "http://site1/fhir"),
        ("everything", "http://site0/fhir"),
        ("everything", "http://site1/fhir"),
    ]
    events = ports.audit.for_entity("Exchange", exchange_id)
    matched = next(e for e in events if e["outcome"] == "member_matched")
    assert matched["detail"]["call"]["endpoint"] == "http://site1/fhir"
    assert [c["endpoint"] for c in matched["detail"]["failed_over"]] == ["http://site0/fhir"]


def test_a_plan_skips_what_is_off_and_what_is_open_and_waits_when_nothing_is_left() -> None:
    now = T0
    endpoints = (
        PartnerEndpoint("http://a/fhir", 0),
        PartnerEndpoint("http://b/fhir", 1, EndpointStatus.OFF, note="suspended"),
        PartnerEndpoint("http://c/fhir", 2),
    )
    plan = plan_endpoints(endpoints, {"http://a/fhir": now + timedelta(seconds=30)}, now)
    assert plan.first == "http://c/fhir" and plan.held_until is None
    assert [why.split(":")[0].split(" (")[0] for _, why in plan.considered] == [
        "skipped",
        "skipped",
        "called first",
    ]
    both_open = {
        "http://a/fhir": now + timedelta(seconds=30),
        "http://c/fhir": now + timedelta(seconds=10),
    }
    waiting = plan_endpoints(endpoints, both_open, now)
    assert waiting.first == "http://a/fhir"
    assert waiting.held_until == now + timedelta(seconds=10) and not waiting.held_planned
    # c in its maintenance window, a behind its circuit: the first free is waited for.
    window = {"http://c/fhir": (now + timedelta(seconds=20), "patching")}
    held = plan_endpoints(endpoints, {"http://a/fhir": now + timedelta(seconds=30)}, now, window)
    assert (held.held_until, held.held_planned) == (now + timedelta(seconds=20), True)
    assert held.held_reason is not None and "patching" in held.held_reason


def test_an_endpoint_in_its_maintenance_window_is_not_called_and_the_next_is() -> None:
    clock = FakeClock()
    partner = _partner([_Endpoint(0, False, (0, 0)), _Endpoint(1, False, (0, 0))])
    window = MaintenanceWindow(
        "patching",
        start=clock.now - timedelta(minutes=5),
        end=clock.now + timedelta(hours=1),
        endpoint="http://site0/fhir",
    )
    partner = replace(partner, operations=Operations(maintenance=(window,)))
    client = Endpoints(clock, {})
    ports = _ports(client, clock, partner)

    [exchange_id] = _run(ports, clock, [0])

    assert ports.exchanges.get(exchange_id).state is S.COMPLETED
    assert {base for _, _, base, _ in client.sent} == {"http://site1/fhir"}
    events = ports.audit.for_entity("Exchange", exchange_id)
    routed = next(e for e in events if e["outcome"] == "route_selected")
    [skipped, first] = routed["detail"]["route"]["endpoints"]
    assert skipped["why"].startswith("skipped: in its maintenance window until")
    assert first["url"] == "http://site1/fhir"


def test_every_endpoint_in_its_window_the_exchange_waits_for_the_first_to_end() -> None:
    clock = FakeClock()
    partner = _partner([_Endpoint(0, False, (0, 0)), _Endpoint(1, False, (0, 0))])
    windows = tuple(
        MaintenanceWindow(
            "patching",
            start=clock.now - timedelta(minutes=5),
            end=clock.now + timedelta(seconds=seconds),
            endpoint=f"http://site{n}/fhir",
        )
        for n, seconds in ((0, 120), (1, 60))
    )
    partner = replace(partner, operations=Operations(maintenance=windows))
    client = Endpoints(clock, {})
    ports = _ports(client, clock, partner)
    t0 = clock.now

    [exchange_id] = _run(ports, clock, [0])

    assert ports.exchanges.get(exchange_id).state is S.COMPLETED
    first_call = min(at for at, _, _, _ in client.sent)
    assert first_call >= t0 + timedelta(seconds=60)
    assert client.sent[0][2] == "http://site1/fhir"  # free first, though second by priority
