"""The business counters, moved by the audit events the rooms build (their own builders,
so that a renamed detail key fails here); labels are codes, never ids, and bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter

from payerbridge.audit.model import AuditEvent
from payerbridge.consent.model import ConsentDecision, ConsentPolicy, DenyReason
from payerbridge.consent.service import decision_event
from payerbridge.exchange.breaker import BreakerState, BreakerStatus, breaker_event
from payerbridge.exchange.model import Attempt, ExchangeState, attempt_event, transition_event
from payerbridge.metrics import observe_events
from payerbridge.metrics.process import LABEL_SETS, Labelled, label_value, process_metrics
from payerbridge.partners.calls import partner_operation
from payerbridge.routing.model import Partner
from payerbridge.types import ExchangeId, MemberId, PartnerId

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def value(name: str, **labels: str) -> float:
    return process_metrics().registry.get_sample_value(name, labels) or 0.0


def moved_by(events: list[AuditEvent], name: str, **labels: str) -> float:
    before = value(name, **labels)
    observe_events(events)
    return value(name, **labels) - before


def test_exchange_moves_retries_and_breakers_are_counted_by_their_codes() -> None:
    exchange = ExchangeId("ex-7f3a")
    dead = transition_event(
        exchange,
        ExchangeState.ROUTE_SELECTED,
        ExchangeState.DEAD_LETTERED,
        "budget-exhausted",
        {"step": "member-match"},
        at=AT,
        actor="payerbridge",
        request_id=None,
        policy_version=None,
    )
    labels = {"state": "dead_lettered", "reason_code": "budget-exhausted"}
    assert moved_by([dead], "payerbridge_exchange_transitions_total", **labels) == 1
    retry = Attempt(
        "member-match", 1, AT + timedelta(seconds=2), AT, "HTTP 503", {"reason": "partner-down"}
    )
    retries = "payerbridge_exchange_retries_total"
    labels = {"step": "member-match", "reason": "partner-down"}
    assert moved_by([attempt_event(exchange, retry, at=AT)], retries, **labels) == 1
    gave_up = Attempt("member-match", 6, None, AT, "HTTP 503", {"reason": "partner-down"})
    assert moved_by([attempt_event(exchange, gave_up, at=AT)], retries, **labels) == 0
    opened = breaker_event(
        "https://old.example/fhir",
        PartnerId("old-plan"),
        BreakerState(),
        BreakerState(BreakerStatus.OPEN, 5),
        at=AT,
    )
    labels = {"partner": "old-plan", "state": "open"}
    assert moved_by([opened], "payerbridge_partner_breaker_transitions_total", **labels) == 1


def test_consent_denials_are_counted_by_reason_and_permits_without_one() -> None:
    denied = ConsentDecision(False, DenyReason.REVOKED, "revoked", None)
    permitted = ConsentDecision(True, None, "ok", ConsentPolicy.REGULAR)
    events = [
        decision_event(
            decision,
            consent_id="c-1",
            member_id=MemberId("m-1"),
            actor="newplan",
            hop="exchange-start",
            at=AT,
            request_id=None,
        )
        for decision in (denied, permitted)
    ]
    name = "payerbridge_consent_decisions_total"
    deny = {"hop": "exchange-start", "outcome": "deny", "reason": "revoked"}
    permit = {"hop": "exchange-start", "outcome": "permit", "reason": "none"}
    before = value(name, **deny), value(name, **permit)
    observe_events(events)
    assert (value(name, **deny), value(name, **permit)) == (before[0] + 1, before[1] + 1)


def test_review_resolution_disclosures_and_withheld_resources() -> None:
    review = AuditEvent(
        AT,
        "ops",
        "identity.review",
        "IdentityReview",
        "case-1",
        "accepted",
        detail={"decision": "d-1", "member": "m-1", "waited_seconds": 5400.0},
    )
    name = "payerbridge_identity_review_resolution_seconds_bucket"
    assert moved_by([review], name, outcome="accepted", le="3600.0") == 0
    assert moved_by([review], name, outcome="accepted", le="14400.0") == 1
    first_page = AuditEvent(
        AT,
        "newplan",
        "patient.everything",
        "Patient",
        "m-1",
        "success",
        detail={"entries": 20, "policy": "regular", "withheld": 3, "after": 0},
    )
    next_page = AuditEvent(
        AT, "newplan", "patient.everything", "Patient", "m-1", "success", detail={"after": 20}
    )
    key = {"operation": "patient.everything", "policy": "regular"}
    assert moved_by([first_page, next_page], "payerbridge_disclosures_total", **key) == 1
    assert moved_by([first_page], "payerbridge_disclosure_withheld_resources_total", **key) == 3


def test_a_completed_export_counts_each_member_released_and_what_was_withheld() -> None:
    completed = AuditEvent(
        AT,
        "newplan",
        "group-export",
        "BulkJob",
        "job-1",
        "completed",
        detail={"released": {"regular": 40, "sensitive": 2}, "withheld": {"regular": 9}},
    )
    regular = {"operation": "group-export", "policy": "regular"}
    assert moved_by([completed], "payerbridge_disclosures_total", **regular) == 40
    assert moved_by([completed], "payerbridge_disclosure_withheld_resources_total", **regular) == 9
    sensitive = {"operation": "group-export", "policy": "sensitive"}
    assert moved_by([completed], "payerbridge_disclosures_total", **sensitive) == 2
    # A bulk match completes without them: counted as a job, not as disclosures.
    matched = AuditEvent(AT, "newplan", "bulk-member-match", "BulkJob", "job-2", "completed")
    jobs = {"kind": "bulk-member-match", "outcome": "completed"}
    assert moved_by([matched], "payerbridge_bulk_jobs_total", **jobs) == 1


def test_a_malformed_event_is_skipped_and_never_fails_the_committed_unit() -> None:
    odd = AuditEvent(
        AT,
        "x",
        "identity.review",
        "IdentityReview",
        "c",
        "rejected",
        detail={"waited_seconds": "?"},
    )
    assert moved_by([odd], "payerbridge_identity_reviews_decided_total", outcome="rejected") == 1
    assert (
        moved_by([odd], "payerbridge_identity_review_resolution_seconds_count", outcome="rejected")
        == 0
    )


def test_labels_are_codes_never_free_text_and_bounded_in_number() -> None:
    assert label_value("budget-exhausted") == "budget-exhausted"
    assert label_value("/exchanges/{exchange_id}") == "/exchanges/{exchange_id}"
    assert label_value(None) == label_value("") == "none"
    # Anything that is not code-shaped (a name, a date with spaces, a long token) is not kept.
    for free_text in ("Ana Maria", "1980-02-03 00:00", "x" * 81, 'a"b', "a@b.example"):
        assert label_value(free_text) == "invalid"
    registry = CollectorRegistry()
    counter = Labelled(Counter("flooded", "a flood of codes", ["code"], registry=registry))
    for i in range(LABEL_SETS + 50):
        counter.child(f"code-{i}").inc()
    (family,) = registry.collect()
    kept = {sample.labels["code"]: sample.value for sample in family.samples}
    assert len(kept) == LABEL_SETS + 1 and kept["other"] == 50


def test_a_partner_calls_operation_names_no_id() -> None:
    partner = Partner(PartnerId("old"), "Old", "1245319599", "https://old.example/base/fhir/")
    assert partner_operation("/base/fhir/Patient/$member-match", partner) == "$member-match"
    assert partner_operation("/base/fhir/Patient/p-123/$everything", partner) == "$everything"
    assert partner_operation("/base/fhir/Coverage", partner) == "Coverage"
    assert partner_operation("/base/fhir/Patient/p-123", partner) == "Patient"
    assert partner_operation("/base/fhir/bulk-status/job-9", partner) == "bulk-status"
    assert partner_operation("/base/fhir", partner) == "base"
