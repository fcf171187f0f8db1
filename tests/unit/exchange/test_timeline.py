"""An exchange's audit timeline, read back from the events its use cases recorded (the
in-memory ports): every kind of entry in the chain's order, and tenancy."""

from __future__ import annotations

import pytest

from payerbridge.errors import NotFound
from payerbridge.exchange.operations.timeline import audit_of_exchange
from payerbridge.exchange.steps.machine import proceed
from payerbridge.types import ClientId, ExchangeId
from tests.builders import an_exchange_request
from tests.fakes import FakeClock, InMemoryAuditChain, InMemoryAuditLog
from tests.unit.exchange.test_service import _client, _parse, _ports, _submit


def test_an_exchange_that_waited_out_an_outage_reads_back_in_order() -> None:
    clock = FakeClock()
    ports = _ports(_client(outages=1), clock)
    exchange_id = ExchangeId(_submit(ports, an_exchange_request()))
    waiting = proceed(ports, exchange_id, _parse)
    assert waiting.retry_at is not None
    clock.now = waiting.retry_at
    proceed(ports, exchange_id, _parse)
    assert isinstance(ports.audit, InMemoryAuditLog)
    reader = InMemoryAuditChain(ports.audit)

    timeline = audit_of_exchange(
        exchange_id, viewer=ClientId("newplan"), exchanges=ports.exchanges, audit=reader
    )
    seqs = [entry.seq for entry in timeline.entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    kinds = [(entry.kind, entry.action, entry.outcome) for entry in timeline.entries]
    # A consent decision commits with the moves it allows, before them.
    assert kinds == [
        ("intake", "consent.recorded", "success"),  # the opt-in captured with the request
        ("intake", "exchange.transition", "submitted"),
        ("consent", "consent.decision", "permit"),  # before $member-match
        ("state", "exchange.transition", "validated"),
        ("state", "exchange.transition", "consent_verified"),
        ("route", "exchange.transition", "route_selected"),
        ("retry", "exchange.attempt", "retry"),  # the partner was down
        ("consent", "consent.decision", "permit"),  # decided again before the retry
        ("consent", "consent.decision", "permit"),  # before the data
        ("identity", "exchange.transition", "member_matched"),
        ("state", "exchange.transition", "retrieving"),
        ("state", "exchange.transition", "received"),
        ("state", "exchange.transition", "normalized"),
        ("state", "exchange.transition", "completed"),
    ]
    shown = timeline.to_json()
    assert shown["intake"]["actor"] == "newplan" and shown["state"] == "completed"
    hops = [d["detail"]["hop"] for d in shown["consent_decisions"]]
    assert hops == ["member-match", "member-match", "everything"]
    assert all(d["detail"]["exchange_id"] == exchange_id for d in shown["consent_decisions"])
    assert shown["route"]["endpoint"] == "http://old/fhir"
    assert shown["identity"]["outcome"] == "matched"
    assert shown["identity"]["matched_member"] == "Patient/p1"
    assert shown["identity"]["member_found_by"] == "MemberId"
    calls = [
        (c["step"], c["attempt"], c["outcome"], c["status"], c["error"])
        for c in shown["partner_calls"]
    ]
    assert calls == [
        ("member-match", 1, "unavailable", None, "PartnerUnavailable"),
        ("member-match", 2, "answered", 200, None),
        ("everything", 1, "answered", 200, None),
    ]
    assert all(
        c["endpoint"] == "http://old/fhir" and c["latency_ms"] >= 0 for c in shown["partner_calls"]
    )
    (retry,) = shown["retries"]
    assert retry["detail"]["reason"] == "partner-unavailable"
    assert shown["final"]["state"] == "completed" and shown["final"]["reason_code"] is None
    assert shown["final"]["seq"] == seqs[-1]
    # Another client's exchange is missing to it; an operator (no viewer) sees any.
    with pytest.raises(NotFound):
        audit_of_exchange(
            exchange_id, viewer=ClientId("other"), exchanges=ports.exchanges, audit=reader
        )
    assert audit_of_exchange(
        exchange_id, viewer=None, exchanges=ports.exchanges, audit=reader
    ).entries


def test_a_refusal_by_the_old_payer_is_a_call_of_its_own_then_the_identity_decision() -> None:
    from payerbridge.errors import NoMatch
    from payerbridge.fhir.member_match import MemberMatchResult
    from tests.fakes import FakePartnerClient
    from tests.unit.exchange.test_service import BUNDLE

    client = FakePartnerClient(
        match=MemberMatchResult("urn:umb", "U1", "Patient/p1"),
        bundle=BUNDLE,
        answers=[NoMatch("no member matches")],
    )
    ports = _ports(client, FakeClock())
    exchange_id = ExchangeId(_submit(ports, an_exchange_request()))
    proceed(ports, exchange_id, _parse)
    assert isinstance(ports.audit, InMemoryAuditLog)

    timeline = audit_of_exchange(
        exchange_id, viewer=None, exchanges=ports.exchanges, audit=InMemoryAuditChain(ports.audit)
    )
    shown = timeline.to_json()
    assert [e["kind"] for e in shown["events"]][-2:] == ["partner-call", "identity"]
    (call,) = shown["partner_calls"]
    assert (call["outcome"], call["error"]) == ("refused", "NoMatch")
    assert (
        shown["identity"]["outcome"] == "no-match" and shown["identity"]["matched_member"] is None
    )
    assert shown["final"]["state"] == "failed" and shown["final"]["reason_code"] == "no-match"
