"""Scheduled checks of quiet partners: which are due, what a check records, and how the
health page reads it back; and why a waiting exchange waits, as its gauge says (issue 68)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from payerbridge.exchange.calls.outbound import PARKED_FOR_BREAKER, _announced_hold, wait_reason
from payerbridge.exchange.model import BreakerState, BreakerStatus
from payerbridge.exchange.ports import ProbeAnswer
from payerbridge.oversight.call_samples import endpoint_samples
from payerbridge.oversight.model import CallEvent, CallSample
from payerbridge.oversight.partner_checks import PartnerCheck, check_event, check_quiet_partners
from payerbridge.oversight.partner_health import (
    TOKEN_ANSWERED,
    HealthState,
    derive_health,
    due_for_check,
)
from payerbridge.routing.model import Partner
from payerbridge.routing.operations import (
    MaintenanceWindow,
    Operations,
    PartnerStatus,
    RateLimit,
)
from payerbridge.types import PartnerId
from tests.fakes import FakeClock, FakePartnerClient
from tests.unit.exchange.test_time_budgets import _ports

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=5)


def _partner(index: int, *, suspended: bool, maintenance: bool) -> Partner:
    windows = (
        (MaintenanceWindow("upgrade", NOW - timedelta(hours=1), NOW + timedelta(hours=1)),)
        if maintenance
        else ()
    )
    status = PartnerStatus.SUSPENDED if suspended else PartnerStatus.ACTIVE
    return Partner(
        id=PartnerId(f"p{index}"),
        name=f"Plan {index}",
        npi="1234567893",
        base_url=f"https://p{index}.example/fhir",
        operations=Operations(status=status, maintenance=windows),
    )


partner_rows = st.lists(
    st.tuples(
        st.booleans(),  # suspended
        st.booleans(),  # in maintenance
        st.sampled_from(list(BreakerStatus)),
        st.none() | st.integers(0, 900),  # seconds since last heard, or never
    ),
    max_size=12,
)


@given(partner_rows, st.integers(1, 12))
def test_due_are_exactly_the_quiet_active_closed_partners_up_to_the_limit(rows, limit) -> None:  # type: ignore[no-untyped-def]
    partners, breakers, calls, expected = [], {}, {}, []
    for index, (suspended, maintenance, status, heard) in enumerate(rows):
        partner = _partner(index, suspended=suspended, maintenance=maintenance)
        partners.append(partner)
        # An open breaker far from its probe; a half-open one seen as it is.
        until = NOW + timedelta(hours=1)
        breakers[partner.fhir_base] = BreakerState(status=status, open_until=until)
        if heard is not None:
            at = NOW - timedelta(seconds=heard)
            calls[partner.id] = [CallSample(at, True, 10, "answered")]
        quiet = heard is None or heard >= INTERVAL.total_seconds()
        closed = status is BreakerStatus.CLOSED
        if not suspended and not maintenance and closed and quiet:
            expected.append(partner)
    due = due_for_check(partners, breakers, calls, NOW, interval=INTERVAL, limit=limit)
    assert due == expected[:limit]


def _check(token: ProbeAnswer | None) -> PartnerCheck:
    answered = ProbeAnswer(True, 200, None, 40)
    return PartnerCheck(PartnerId("p1"), "https://p1.example/fhir", NOW, answered, token)


def test_a_check_reads_back_as_its_capabilities_and_token_calls() -> None:
    event = check_event(_check(ProbeAnswer(True, 200, None, 90)))
    assert event.action == "partner.checked" and event.outcome == "answered"
    samples = endpoint_samples(event.detail)
    assert [(s.kind, s.answered, s.latency_ms) for s in samples] == [
        ("answered", True, 40),
        (TOKEN_ANSWERED, True, 90),
    ]


def test_a_refused_token_leaves_an_answering_partner_degraded_and_says_why() -> None:
    refused = check_event(_check(ProbeAnswer(True, 401, "refused", 30)))
    health = derive_health(
        BreakerState(),
        endpoint_samples(refused.detail),
        maintenance=None,
        last_success_before=None,
        now=NOW,
    )
    assert health.state is HealthState.DEGRADED
    assert any("refused our credentials" in reason for reason in health.reasons)
    # A later check that got a token puts it back up.
    later = replace(_check(ProbeAnswer(True, 200, None, 30)), at=NOW + timedelta(minutes=1))
    samples = [*endpoint_samples(refused.detail), *endpoint_samples(check_event(later).detail)]
    again = derive_health(
        BreakerState(),
        samples,
        maintenance=None,
        last_success_before=None,
        now=NOW + timedelta(minutes=1),
    )
    assert again.state is HealthState.UP, again.reasons


def test_an_unreachable_partner_checked_reads_down_with_no_exchange_running() -> None:
    down = PartnerCheck(
        PartnerId("p1"),
        "https://p1.example/fhir",
        NOW,
        ProbeAnswer(False, None, "ConnectError", 3),
        None,
    )
    event = check_event(down)
    assert event.outcome == "unanswered"
    health = derive_health(
        BreakerState(), endpoint_samples(event.detail), maintenance=None,
        last_success_before=None, now=NOW,
    )  # fmt: skip
    assert health.state is HealthState.DOWN
    assert health.error_mix == {"ConnectError": 1}


class _Heard:
    """The calls the audit log holds, read back as the health page reads them."""

    def __init__(self, ports) -> None:  # type: ignore[no-untyped-def]
        self.audit = ports.audit

    def call_events_since(self, since: datetime) -> list[CallEvent]:
        return [
            CallEvent(event.entity_type, event.detail)
            for event in self.audit.events
            if event.entity_type == "PartnerEndpoint" and event.at >= since
        ]


def test_a_quiet_partner_is_checked_once_per_interval_with_its_token_endpoint() -> None:
    clock = FakeClock(NOW)
    partner = replace(_partner(1, suspended=False, maintenance=False), client_id="us")
    client = FakePartnerClient(match=None, bundle=b"{}")  # type: ignore[arg-type]
    ports = _ports(client, clock, partner)
    heard = _Heard(ports)

    def run() -> list[PartnerCheck]:
        return check_quiet_partners(ports, lambda: [partner], lambda: {}, heard, interval=INTERVAL)

    first = run()
    assert [c.partner_id for c in first] == ["p1"] and first[0].token is not None
    assert client.probes == 1 and ("token", "check") in client.calls
    clock.advance(240)
    assert run() == []  # heard from within the interval
    clock.advance(120)
    assert len(run()) == 1 and client.probes == 2
    checks = [e for e in ports.audit.events if e.action == "partner.checked"]
    assert len(checks) == 2


@given(
    st.text(min_size=1, max_size=40),
    st.integers(1, 1000),
    st.floats(1, 3600, allow_nan=False),
)
def test_what_holds_a_call_back_is_read_back_from_the_rows_text_as_its_reason(
    why: str, requests: int, per_seconds: float
) -> None:
    """The gauge of waiting exchanges names what holds each back from the text its row
    keeps: every hold the exchange room announces reads back as its own reason."""
    clock = FakeClock(NOW)
    window = MaintenanceWindow(why, NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    limit = RateLimit(requests, per_seconds)
    client = FakePartnerClient(match=None, bundle=b"{}")  # type: ignore[arg-type]
    for operations in (Operations(maintenance=(window,)), Operations(rate_limit=limit)):
        partner = replace(_partner(1, suspended=False, maintenance=False), operations=operations)
        ports = _ports(client, clock, partner)
        held = _announced_hold(ports, partner, NOW)
        while held is None:  # the rate's first turn is free: take turns until one waits
            held = _announced_hold(ports, partner, NOW)
        reason, text, _ = held
        assert wait_reason(text) == reason
    assert wait_reason(PARKED_FOR_BREAKER) == "circuit-open"
    assert wait_reason("partner 'p1' did not answer") == "partner-unavailable"
