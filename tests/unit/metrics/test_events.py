"""The business counters, moved by the audit events the rooms build (their own builders,
so that a renamed detail key fails here); labels are codes, never ids, and bounded; the
series of every state and reason the platform knows are there at zero from the start;
a match answered after a reviewer accepted it counts as a match, the reviewer's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, Counter

from payerbridge.audit.model import AuditEvent
from payerbridge.consent.model import ConsentDecision, ConsentPolicy, DenyReason, Hop
from payerbridge.consent.service import decision_event
from payerbridge.errors import MatchUnderReview
from payerbridge.exchange.calls.breaker import BreakerChange, breaker_event
from payerbridge.exchange.model import (
    Attempt,
    BreakerState,
    BreakerStatus,
    ExchangeState,
    Move,
    Stamp,
    attempt_event,
    transition_event,
)
from payerbridge.identity.model import ReviewDecision
from payerbridge.identity.reviews import decide_review
from payerbridge.metrics import observe_events
from payerbridge.metrics.process import (
    LABEL_SETS,
    Labelled,
    ProcessMetrics,
    label_value,
    process_metrics,
)
from payerbridge.partners.calls import partner_operation
from payerbridge.routing.model import Partner
from payerbridge.types import ExchangeId, MemberId, PartnerId
from tests.fakes import identity_unit
from tests.unit.identity.test_service import _match as match_in_unit
from tests.unit.identity.test_service import _other_card as other_card
from tests.unit.identity.test_service import _store as identity_store

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
        Move(ExchangeState.DEAD_LETTERED, "budget-exhausted", {"step": "member-match"}),
        Stamp(AT, "payerbridge"),
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
    change = BreakerChange(
        "https://old.example/fhir",
        PartnerId("old-plan"),
        BreakerState(),
        BreakerState(BreakerStatus.OPEN, 5),
    )
    opened = breaker_event(change, at=AT)
    labels = {"partner": "old-plan", "state": "open"}
    assert moved_by([opened], "payerbridge_partner_breaker_transitions_total", **labels) == 1


def test_consent_denials_are_counted_by_reason_and_permits_without_one() -> None:
    denied = ConsentDecision(False, DenyReason.REVOKED, "revoked", None)
    permitted = ConsentDecision(True, None, "ok", ConsentPolicy.REGULAR)
    events = [
        decision_event(
            decision,
            Hop("exchange-start", AT, "newplan", None),
            consent_id="c-1",
            member_id=MemberId("m-1"),
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


def test_the_known_series_are_there_at_zero_and_outside_the_bound() -> None:
    fresh = ProcessMetrics()  # as a process starts
    sample = fresh.registry.get_sample_value
    dead = {"state": "dead_lettered", "reason_code": "attempts-exhausted"}
    assert sample("payerbridge_exchange_transitions_total", dead) == 0
    assert sample("payerbridge_exchange_transitions_total", {**dead, "reason_code": "none"}) == 0
    for state in ExchangeState:
        assert (
            sample(
                "payerbridge_exchange_transitions_total", {"state": state, "reason_code": "none"}
            )
            == 0
        )
    retry = {"step": "everything", "reason": "partner-unavailable"}
    assert sample("payerbridge_exchange_retries_total", retry) == 0
    engine = {"policy": "bulk", "outcome": "review", "reason": "margin_too_small", "via": "engine"}
    assert sample("payerbridge_member_match_decisions_total", engine) == 0
    reviewed = {"policy": "single_exchange", "outcome": "match", "reason": "review_accepted"}
    assert sample("payerbridge_member_match_decisions_total", {**reviewed, "via": "review"}) == 0
    assert sample("payerbridge_identity_reviews_decided_total", {"outcome": "rejected"}) == 0
    jobs = {"kind": "group-export", "outcome": "failed"}
    assert sample("payerbridge_bulk_jobs_total", jobs) == 0
    assert sample("payerbridge_onboardings_total", {"outcome": "completed"}) == 0
    # Known values do not use up the bound a flood of unknown ones is held to.
    registry = CollectorRegistry()
    counter = Labelled(Counter("known", "known and unknown codes", ["code"], registry=registry))
    for i in range(10):
        counter.zero(f"known-{i}")
    for i in range(LABEL_SETS + 5):
        counter.child(f"code-{i}").inc()
    (family,) = registry.collect()
    kept = {sample.labels["code"]: sample.value for sample in family.samples}
    assert len(kept) == 10 + LABEL_SETS + 1 and kept["other"] == 5 and kept["known-3"] == 0


def test_a_match_a_reviewer_accepted_counts_as_a_match_when_answered() -> None:
    """The engine's review is its decision; the reviewer's acceptance, answered as a match
    when the same request comes again, is a decision too: a match, ``via="review"``."""
    store = identity_store()
    request = other_card(0)
    with pytest.raises(MatchUnderReview) as under_review:
        match_in_unit(store, request)
    with pytest.raises(MatchUnderReview):
        match_in_unit(store, request)  # asked again while the case is open: no decision
    review_id = under_review.value.review_id
    assert review_id is not None
    choice = ReviewDecision(review_id, 1, True, MemberId("p1"), "ops", "called the member")
    decide_review(choice, identity_unit(store, at=AT), request_id=None)
    assert match_in_unit(store, request).member_id == "p1"

    name = "payerbridge_member_match_decisions_total"
    policy = {"policy": "single_exchange"}
    review = {**policy, "outcome": "review", "reason": "guard_violation", "via": "engine"}
    match = {**policy, "outcome": "match", "reason": "review_accepted", "via": "review"}
    before = value(name, **review), value(name, **match)
    observe_events(store.audit.events)
    assert (value(name, **review), value(name, **match)) == (before[0] + 1, before[1] + 1)
    matched = [e for e in store.audit.events if e.action == "member-match" and e.outcome == "match"]
    assert [e.detail["via"] for e in matched] == ["review"]


def test_a_partner_calls_operation_names_no_id() -> None:
    partner = Partner(PartnerId("old"), "Old", "1245319599", "https://old.example/base/fhir/")
    assert partner_operation("/base/fhir/Patient/$member-match", partner) == "$member-match"
    assert partner_operation("/base/fhir/Patient/p-123/$everything", partner) == "$everything"
    assert partner_operation("/base/fhir/Coverage", partner) == "Coverage"
    assert partner_operation("/base/fhir/Patient/p-123", partner) == "Patient"
    assert partner_operation("/base/fhir/bulk-status/job-9", partner) == "bulk-status"
    assert partner_operation("/base/fhir", partner) == "base"


def test_deliveries_are_counted_by_destination_and_outcome() -> None:
    from datetime import UTC, datetime

    from payerbridge.audit.model import AuditEvent
    from payerbridge.metrics.events import observe_events
    from payerbridge.metrics.process import process_metrics

    series = process_metrics().destination_deliveries
    before = series.child("plan-fhir", "refused")._value.get()
    event = AuditEvent(
        datetime.now(UTC),
        "system:delivery",
        "exchange.delivery",
        "Exchange",
        "x1",
        "refused",
        detail={"destination": "plan-fhir", "reason_code": "destination-refused"},
    )
    observe_events([event])
    assert series.child("plan-fhir", "refused")._value.get() == before + 1
