"""The exchange use cases on the in-memory ports (tests/fakes.py): submit an exchange and
take it through $member-match, $everything and normalization, wait out an outage, stop
at a revocation. No database, no network."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from payerbridge.api.schemas import ExchangeCreate
from payerbridge.errors import Conflict, MatchUnderReview, NoMatch, UnprocessableRequest
from payerbridge.exchange.calls.outbound import admit_call, record_outcome
from payerbridge.exchange.intake.submission import (
    ExchangeSubmission,
    SubmittedExchange,
    submit_exchange,
)
from payerbridge.exchange.model import (
    BreakerState,
    ExchangeRequest,
    ExchangeStart,
    ExchangeState,
    RetryPolicy,
    Submission,
)
from payerbridge.exchange.operations.interventions import (
    ask_again_now,
    cancel,
    replay,
    revoke_and_stop,
)
from payerbridge.exchange.requests import request_from_document
from payerbridge.exchange.steps.machine import proceed
from payerbridge.exchange.steps.review import (
    awaits_partner_review,
    partner_case_reference,
    partner_review_wait,
)
from payerbridge.exchange.unit import ExchangeUnit, ExchangeWiring
from payerbridge.fhir.completeness import Gap, outcome_entry
from payerbridge.fhir.member_match import MemberMatchResult
from payerbridge.fhir.outcome import rendering_for
from payerbridge.routing.capabilities import Capabilities
from payerbridge.routing.model import Organization, Partner
from payerbridge.types import PartnerId
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
    InMemoryAuditLog,
    InMemoryBreakerStore,
    InMemoryConsentStore,
    InMemoryExchangeStore,
    InMemoryPartnerDirectory,
    InMemoryPullSchedules,
    InMemoryResourceWriter,
    InMemoryTransactions,
)

OLD_PLAN = Partner("old-plan", "Old Plan", "1245319599", "http://old/fhir")
BUNDLE = orjson.dumps(
    {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": a_patient()}, {"resource": a_coverage()}],
    }
)


def _ports(client: FakePartnerClient, clock: FakeClock) -> ExchangeUnit:
    audit = InMemoryAuditLog()
    ids = itertools.count(1)
    exchanges, consents, breakers = (
        InMemoryExchangeStore(),
        InMemoryConsentStore(),
        InMemoryBreakerStore(),
    )
    writer = InMemoryResourceWriter(exchanges)
    return ExchangeUnit(
        ExchangeWiring(
            transactions=InMemoryTransactions(audit, exchanges, writer, consents, breakers),
            exchanges=exchanges,
            partners=InMemoryPartnerDirectory(OLD_PLAN),
            client=client,
            writer=writer,
            received=writer,
            breakers=breakers,
            pulls=InMemoryPullSchedules(),
            consents=consents,
            audit=audit,
            search=None,  # the operator's reads: not what these use cases touch
            audit_reader=None,
            us=Organization("New Plan", "1234567893"),
            clock=clock,
            new_id=lambda: f"id-{next(ids)}",
            random=lambda: 0.5,
            retry_policy=RetryPolicy(
                max_attempts=3,
                base_delay_seconds=1.0,
                max_delay_seconds=10.0,
                step_budget_seconds=120.0,
                exchange_budget_seconds=900.0,
                call_timeout_seconds=5.0,
                breaker_failure_threshold=5,
                breaker_cooldown_seconds=30.0,
            ),
            consent_zone=ZoneInfo("UTC"),
        )
    )


def _client(outages: int = 0) -> FakePartnerClient:
    return FakePartnerClient(
        match=MemberMatchResult("urn:umb", "U1", "Patient/p1"), bundle=BUNDLE, outages=outages
    )


def _submit(ports: ExchangeUnit, raw: dict[str, Any], key: str | None = None) -> str:
    return a_submitted_exchange(ports, raw, client_id="newplan", key=key)


def _parse(raw: dict[str, Any]) -> ExchangeRequest:
    return ExchangeCreate.model_validate(raw).to_domain()


def test_a_submission_is_recorded_once_per_idempotency_key() -> None:
    ports = _ports(_client(), FakeClock())
    first = _submit(ports, an_exchange_request(), key="k1")
    assert _submit(ports, an_exchange_request(), key="k1") == first
    record = ports.exchanges.current(first)
    assert record.state is ExchangeState.SUBMITTED and record.consent_id is not None
    with pytest.raises(UnprocessableRequest, match="different request") as refused:
        _submit(ports, an_exchange_request(given=["Luisa"]), key="k1")
    assert rendering_for(refused.value).status == 422  # as the old payer's keys answer
    assert [issue.expression for issue in refused.value.issues] == ["Idempotency-Key"]
    assert _submit(ports, an_exchange_request(), key="k2") != first


def _submitted(ports: ExchangeUnit, key: str | None) -> SubmittedExchange:
    raw = ExchangeCreate.model_validate(an_exchange_request()).model_dump(mode="json")
    command = ExchangeSubmission(_parse(raw), raw, client_id="newplan", idempotency_key=key)
    return submit_exchange(command, ports)


def test_a_submission_says_which_run_to_enqueue_and_enqueues_nothing_itself() -> None:
    ports = _ports(_client(), FakeClock())
    first = _submitted(ports, "k1")
    assert first.is_new
    assert first.start == ExchangeStart(first.exchange_id, PartnerId("old-plan"))
    # A repeat while it waits in submitted (its process may have died before enqueueing).
    again = _submitted(ports, "k1")
    assert (again.exchange_id, again.is_new, again.start) == (first.exchange_id, False, first.start)
    proceed(ports, first.exchange_id, _parse)  # its workflow moves it on
    assert ports.exchanges.current(first.exchange_id).state is not ExchangeState.SUBMITTED
    later = _submitted(ports, "k1")
    assert (later.exchange_id, later.is_new, later.start) == (first.exchange_id, False, None)


class _RacingExchangeStore(InMemoryExchangeStore):
    """A twin submission commits between our lookup of its key and our insert."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def find_by_idempotency_key(self, client_id: str, key: str | None) -> Submission | None:
        self.lookups += 1
        return None if self.lookups == 2 else super().find_by_idempotency_key(client_id, key)


def test_a_submission_that_loses_the_key_race_leaves_no_opt_in_behind() -> None:
    ports = _ports(_client(), FakeClock())
    racing = _RacingExchangeStore()
    transactions = InMemoryTransactions(ports.audit, racing, ports.consents)  # type: ignore[arg-type]
    ports = unit_with(ports, exchanges=racing, transactions=transactions)
    first = _submit(ports, an_exchange_request(), key="k1")

    twin = _submit(ports, an_exchange_request(), key="k1")

    assert twin == first and len(racing.records) == 1
    assert len(ports.consents.consents) == 1  # type: ignore[attr-defined]
    assert transactions.rollbacks == 1
    recorded = ports.audit.actions()  # type: ignore[attr-defined]
    assert recorded.count("consent.recorded") == 1 and recorded.count("exchange.transition") == 1


def test_proceed_takes_an_exchange_to_completed_with_one_audited_commit_per_hop() -> None:
    client = _client()
    ports = _ports(client, FakeClock())
    exchange_id = _submit(ports, an_exchange_request())

    result = proceed(ports, exchange_id, _parse)

    assert result.state is ExchangeState.COMPLETED and result.done
    record = ports.exchanges.current(exchange_id)
    assert [t.to_state for t in record.transitions] == [
        "submitted",
        "validated",
        "consent_verified",
        "route_selected",
        "member_matched",
        "retrieving",
        "received",
        "normalized",
        "completed",
    ]
    assert record.matched_member_ref == "Patient/p1"
    assert [operation for operation, _ in client.calls] == ["member-match", "everything"]
    assert all(key.startswith(exchange_id) for _, key in client.calls)
    written = ports.writer.written  # type: ignore[attr-defined]
    stored = written[f"exchange:{exchange_id}"]
    kept = [r["resourceType"] for r in stored]
    # Received, with where it came from, and our Patient for the member (ADR 0054): the
    # plan holds none, so the old payer's Patient is linked to ours and the rest points to it.
    assert kept == ["Patient", "Coverage", "Provenance", "Patient"]
    member = f"Patient/{stored[-1]['id']}"
    assert record.imported_patient_id == stored[-1]["id"]
    assert stored[0]["link"] == [{"other": {"reference": member}, "type": "seealso"}]
    assert stored[1]["beneficiary"] == {"reference": member}
    actions = ports.audit.actions(exchange_id)  # type: ignore[attr-defined]
    assert actions.count("exchange.transition") == 9
    # Running it again changes nothing: the row says it is done.
    assert proceed(ports, exchange_id, _parse).done
    assert len(client.calls) == 2


def test_a_partner_that_answers_without_member_id_is_asked_by_identifier() -> None:
    """HRex 1.0.0 answers the identifier only; PDex 2.0 then expects the Patient search."""
    client = FakePartnerClient(
        match=MemberMatchResult("urn:umb", "U1", None), bundle=BUNDLE, found="Patient/p1"
    )
    ports = _ports(client, FakeClock())
    exchange_id = _submit(ports, an_exchange_request())

    assert proceed(ports, exchange_id, _parse).state is ExchangeState.COMPLETED

    record = ports.exchanges.current(exchange_id)
    assert record.matched_member_ref == "Patient/p1"
    assert [op for op, _ in client.calls] == ["member-match", "find-member", "everything"]
    (matched,) = [t for t in record.transitions if t.to_state == "member_matched"]
    assert matched.detail is not None
    assert matched.detail["member_found_by"] == "Patient?identifier="
    # The call that found the member goes with the move it allowed.
    call = matched.detail["call"]
    assert (call["step"], call["attempt"], call["outcome"], call["status"]) == (
        "member-match",
        1,
        "answered",
        200,
    )


def test_a_member_the_partners_search_cannot_find_fails_the_exchange_as_no_match() -> None:
    client = FakePartnerClient(match=MemberMatchResult("urn:umb", "U1", None), bundle=BUNDLE)
    ports = _ports(client, FakeClock())
    exchange_id = _submit(ports, an_exchange_request())

    result = proceed(ports, exchange_id, _parse)

    record = ports.exchanges.current(exchange_id)
    assert result.state is ExchangeState.FAILED and record.error_code == "no-match"
    assert [op for op, _ in client.calls] == ["member-match", "find-member"]


def _under_review(*answers: MemberMatchResult | Exception) -> FakePartnerClient:
    review = MatchUnderReview("review case R1 is open: send the request again after it is decided")
    return FakePartnerClient(
        match=MemberMatchResult("urn:umb", "U1", "Patient/p1"),
        bundle=BUNDLE,
        answers=[review, *answers],
    )


def test_an_exchange_waits_for_the_old_payers_reviewer_and_completes_when_accepted() -> None:
    clock = FakeClock()
    still = MatchUnderReview("review case R1 is open")
    client = _under_review(still)
    ports = _ports(client, clock)
    exchange_id = _submit(ports, an_exchange_request())
    entered = clock.now

    waiting = proceed(ports, exchange_id, _parse)

    record = ports.exchanges.current(exchange_id)
    assert waiting.state is ExchangeState.MANUAL_REVIEW and waiting.done
    assert record.error_code == "partner-review" and "R1" in (record.error_text or "")
    assert record.next_attempt_at == entered + timedelta(seconds=300)
    assert record.deadline_at == entered + timedelta(hours=72)
    # The requester's view of it: since when, the partner's case, the next question.
    wait = partner_review_wait(record, ports.retry_policy, entered + timedelta(hours=1))
    assert (wait.since, wait.waited, wait.case_reference) == (entered, timedelta(hours=1), "R1")
    assert (wait.partner_id, wait.next_ask_at) == (record.partner_id, record.next_attempt_at)
    assert partner_case_reference("under review; call us") is None
    # Not due: nothing is asked.
    assert proceed(ports, exchange_id, _parse).done and len(client.calls) == 1
    clock.now = entered + timedelta(seconds=300)
    assert proceed(ports, exchange_id, _parse).state is ExchangeState.MANUAL_REVIEW
    record = ports.exchanges.current(exchange_id)
    # Asked again after as long as it has waited (the poll, here), under a new key.
    assert record.next_attempt_at == clock.now + timedelta(seconds=300)
    assert client.calls[1][1] != client.calls[0][1]
    clock.now = record.next_attempt_at
    done = proceed(ports, exchange_id, _parse)

    assert done.state is ExchangeState.COMPLETED
    record = ports.exchanges.current(exchange_id)
    assert record.error_code is None and record.matched_member_ref == "Patient/p1"
    states = [t.to_state for t in record.transitions]
    assert states[states.index("manual_review") + 1 :][:2] == ["member_matched", "retrieving"]
    keys = [key for _, key in client.calls]
    assert len(set(keys[:3])) == 3  # each question to the reviewer its own


def test_a_reviewers_rejection_at_the_old_payer_fails_the_exchange_with_the_reason() -> None:
    clock = FakeClock()
    client = _under_review(NoMatch("a reviewer found that no member matches this request"))
    ports = _ports(client, clock)
    exchange_id = _submit(ports, an_exchange_request())
    proceed(ports, exchange_id, _parse)
    clock.now += timedelta(seconds=300)

    result = proceed(ports, exchange_id, _parse)

    record = ports.exchanges.current(exchange_id)
    assert result.state is ExchangeState.FAILED and record.error_code == "no-match"
    assert "reviewer found" in (record.error_text or "")


def test_a_review_that_outlasts_the_wait_fails_without_asking_again() -> None:
    clock = FakeClock()
    client = _under_review()
    ports = _ports(client, clock)
    exchange_id = _submit(ports, an_exchange_request())
    proceed(ports, exchange_id, _parse)
    clock.now += timedelta(hours=72)

    result = proceed(ports, exchange_id, _parse)

    record = ports.exchanges.current(exchange_id)
    assert result.state is ExchangeState.FAILED
    assert record.error_code == "partner-review-expired" and len(client.calls) == 1


def test_a_partner_down_when_asked_again_leaves_the_exchange_waiting_for_the_sweep() -> None:
    clock = FakeClock()
    client = _under_review()
    ports = _ports(client, clock)
    exchange_id = _submit(ports, an_exchange_request())
    proceed(ports, exchange_id, _parse)
    clock.now += timedelta(seconds=300)
    client.outages = 1

    result = proceed(ports, exchange_id, _parse)

    record = ports.exchanges.current(exchange_id)
    assert result.state is ExchangeState.MANUAL_REVIEW and result.done  # no loop in the run
    assert record.next_attempt_at is not None and record.next_attempt_at > clock.now
    clock.now = record.next_attempt_at
    assert proceed(ports, exchange_id, _parse).state is ExchangeState.COMPLETED


def test_the_route_is_decided_from_the_directory_and_recorded_with_its_alternatives() -> None:
    client = _client()
    ports = _ports(client, FakeClock())
    directory = ports.partners
    reading = Capabilities(FakeClock().now, "4.0.1", {"hrex": "1.1.0"},
                           frozenset({"member-match", "everything"}))  # fmt: skip
    directory.readings[OLD_PLAN.id] = reading  # type: ignore[attr-defined]
    exchange_id = _submit(ports, an_exchange_request())

    assert proceed(ports, exchange_id, _parse).state is ExchangeState.COMPLETED

    record = ports.exchanges.current(exchange_id)
    (selected,) = [t for t in record.transitions if t.to_state == "route_selected"]
    route = (selected.detail or {})["route"]
    assert (route["find_member"], route["data"]) == ("MemberId", "$everything")
    assert {r["option"] for r in route["rejected"]} == {"search by compartment", "bulk export"}


def test_a_partner_that_dropped_everything_fails_the_exchange_before_any_call() -> None:
    client = _client()
    ports = _ports(client, FakeClock())
    reading = Capabilities(FakeClock().now, "4.0.1", {}, frozenset({"member-match"}))
    ports.partners.readings[OLD_PLAN.id] = reading  # type: ignore[attr-defined]
    exchange_id = _submit(ports, an_exchange_request())

    result = proceed(ports, exchange_id, _parse)

    record = ports.exchanges.current(exchange_id)
    assert result.state is ExchangeState.FAILED and record.error_code == "no-route"
    assert "does not offer $everything" in (record.error_text or "") and client.calls == []


def test_a_breaker_moves_in_one_unit_with_its_audit_event_and_a_healthy_one_is_only_read() -> None:
    clock = FakeClock()
    client = _client()
    ports = _ports(client, clock)
    transactions: InMemoryTransactions = ports.wiring.transactions  # type: ignore[assignment]
    assert admit_call(ports, OLD_PLAN, clock.now).allowed
    record_outcome(ports, OLD_PLAN, succeeded=True, seen=BreakerState())
    assert transactions.commits == 0  # closed and staying so: nothing written

    for _ in range(5):  # the policy's threshold
        record_outcome(ports, OLD_PLAN, succeeded=False)
    held = admit_call(ports, OLD_PLAN, clock.now)
    assert not held.allowed and held.retry_at == clock.now + timedelta(seconds=30)
    clock.advance(30)  # the probe interval: the caller that finds it due claims the probe
    probed = admit_call(ports, OLD_PLAN, clock.now)
    assert probed.allowed and probed.state == BreakerState() and client.probes == 1
    assert client.calls == []  # the probe is a call of its own, not an exchange's

    events = ports.audit.for_entity("PartnerEndpoint", OLD_PLAN.fhir_base)  # type: ignore[attr-defined]
    assert [(e["action"], e["detail"]["from"]) for e in events] == [
        ("breaker.opened", "closed"),
        ("breaker.half-opened", "open"),
        ("breaker.closed", "half_open"),
    ]
    assert events[-1]["detail"]["probe"]["answered"] is True
    # Each failure, the probe claimed and its outcome: the held-back call only read.
    assert transactions.commits == 5 + 1 + 1
    assert ports.breakers.get(OLD_PLAN.fhir_base) == BreakerState()


def test_an_outage_is_waited_out_and_the_exchange_resumes_from_its_row() -> None:
    clock = FakeClock()
    client = _client(outages=1)
    ports = _ports(client, clock)
    exchange_id = _submit(ports, an_exchange_request())

    waiting = proceed(ports, exchange_id, _parse)

    assert waiting.retry_at is not None and not waiting.done
    record = ports.exchanges.current(exchange_id)
    assert (record.state, record.attempts) == (ExchangeState.ROUTE_SELECTED, 1)
    (attempt,) = [e for e in ports.audit.events if e.action == "exchange.attempt"]  # type: ignore[attr-defined]
    assert (attempt.entity_id, attempt.outcome) == (exchange_id, "retry")
    assert attempt.detail["step"] == "member-match" and attempt.detail["attempt"] == 1
    # Not due yet: nothing is called.
    assert proceed(ports, exchange_id, _parse).retry_at == waiting.retry_at
    assert len(client.calls) == 1
    clock.now = waiting.retry_at
    assert proceed(ports, exchange_id, _parse).state is ExchangeState.COMPLETED
    # The retried call carries the same idempotency key: the partner can deduplicate it.
    assert client.calls[0] == client.calls[1]


def test_a_revoked_opt_in_blocks_the_exchange_before_anything_leaves() -> None:
    client = _client()
    ports = _ports(client, FakeClock())
    exchange_id = _submit(ports, an_exchange_request())
    consent_id = ports.exchanges.current(exchange_id).consent_id
    assert consent_id is not None

    _, blocked = revoke_and_stop(ports, consent_id, by="member", request_id=None)

    assert blocked == [exchange_id]
    assert ports.exchanges.current(exchange_id).state is ExchangeState.BLOCKED
    assert proceed(ports, exchange_id, _parse).done
    assert client.calls == []


def test_the_kept_request_reads_back_as_the_api_accepted_it() -> None:
    moved = an_exchange_request(
        given=["Ana", "Maria"],
        address={"line": ["1 Main St"], "city": "Austin", "state": "TX", "postal_code": "78701"},
        phone="555-0100",
    )
    for raw in (
        an_exchange_request(),
        moved,
        {**an_exchange_request(), "consent": None, "consent_id": "opt-in-1"},
    ):
        body = ExchangeCreate.model_validate(raw)
        kept = body.model_dump(mode="json")
        assert request_from_document(kept) == body.to_domain()


def test_a_partner_in_its_maintenance_window_is_called_when_it_ends_with_the_budget_kept() -> None:
    from dataclasses import replace as replaced

    from payerbridge.routing.operations import parse_operations

    clock = FakeClock()
    client = _client()
    ports = _ports(client, clock)
    ends = clock.now + timedelta(hours=2)
    window = {"start": clock.now.isoformat(), "end": ends.isoformat(), "reason": "upgrade"}
    operations = parse_operations({"maintenance": [window]})
    ports.partners.partners[OLD_PLAN.id] = replaced(OLD_PLAN, operations=operations)  # type: ignore[attr-defined]
    exchange_id = _submit(ports, an_exchange_request())
    submitted = ports.exchanges.current(exchange_id)

    waiting = proceed(ports, exchange_id, _parse)

    assert waiting.retry_at == ends and not waiting.done and client.calls == []
    record = ports.exchanges.current(exchange_id)
    assert record.state is ExchangeState.ROUTE_SELECTED and record.next_attempt_at == ends
    assert record.deadline_at == submitted.deadline_at + timedelta(hours=2)  # type: ignore[operator]
    clock.now = ends
    assert proceed(ports, exchange_id, _parse).state is ExchangeState.COMPLETED


def test_an_operator_cancels_an_exchange_that_waits_but_not_one_running_a_step() -> None:
    clock = FakeClock()
    ports = _ports(_client(outages=1), clock)
    exchange_id = _submit(ports, an_exchange_request())
    with pytest.raises(Conflict, match="only while it waits"):  # submitted: a run takes it now
        cancel(ports, exchange_id, actor="ops", note="duplicate request")
    assert proceed(ports, exchange_id, _parse).retry_at is not None  # waits to retry
    with pytest.raises(Conflict, match="under the old payer's review"):
        ask_again_now(ports, exchange_id, actor="ops")

    cancel(ports, exchange_id, actor="ops", note="duplicate request")

    record = ports.exchanges.current(exchange_id)
    assert (record.state, record.error_code) == (ExchangeState.FAILED, "cancelled")
    assert record.error_text == "cancelled by an operator: duplicate request"
    assert proceed(ports, exchange_id, _parse).done  # the waiting run just ends


def test_an_operator_has_the_old_payer_asked_again_now_about_its_review() -> None:
    clock = FakeClock()
    ports = _ports(_under_review(), clock)
    exchange_id = _submit(ports, an_exchange_request())
    proceed(ports, exchange_id, _parse)
    waiting = ports.exchanges.current(exchange_id)
    assert awaits_partner_review(waiting) and waiting.next_attempt_at > clock.now  # type: ignore[operator]

    assert ask_again_now(ports, exchange_id, actor="ops") == clock.now

    assert ports.exchanges.current(exchange_id).next_attempt_at == clock.now
    assert proceed(ports, exchange_id, _parse).state is ExchangeState.COMPLETED


def test_a_partner_without_everything_is_read_by_searches_as_the_route_decided() -> None:
    client = _client()
    ports = _ports(client, FakeClock())
    searchable = frozenset({"Condition", "Coverage", "Patient"})
    reading = Capabilities(
        FakeClock().now,
        "4.0.1",
        {"hrex": "1.1.0"},
        frozenset({"member-match"}),
        searchable=searchable,
    )
    ports.partners.readings[OLD_PLAN.id] = reading  # type: ignore[attr-defined]
    exchange_id = _submit(ports, an_exchange_request())

    assert proceed(ports, exchange_id, _parse).state is ExchangeState.COMPLETED

    assert [call for call, _ in client.calls] == [
        "member-match",
        "search:Condition,Coverage,Patient",
    ]
    record = ports.exchanges.current(exchange_id)
    assert record.data_path == "search by compartment: Condition,Coverage,Patient"
    (received,) = [t for t in record.transitions if t.to_state == "received"]
    assert (received.detail or {})["read_by"] == "search by compartment"


def _bundle(*resources: dict[str, Any], gaps: list[Gap] | None = None) -> bytes:
    entries: list[dict[str, Any]] = [{"resource": r} for r in resources]
    if gaps:
        entries.append(outcome_entry(gaps))
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries})


def test_a_partial_answer_ends_partial_and_asking_again_updates_what_is_held() -> None:
    claims = Gap("claims", ("ExplanationOfBenefit",), "source-timeout", "no answer", True)
    client = _client()
    client.bundle = _bundle(a_patient(), a_coverage(), gaps=[claims])
    ports = _ports(client, FakeClock())
    exchange_id = _submit(ports, an_exchange_request())

    assert proceed(ports, exchange_id, _parse).state is ExchangeState.PARTIAL
    partial = ports.exchanges.current(exchange_id)
    assert partial.error_code == "incomplete" and "'claims'" in (partial.error_text or "")
    (end,) = [t for t in partial.transitions if t.to_state == "partial"]
    assert end.detail and end.detail["completeness"]["gaps"] == [claims.to_json()]
    writer = ports.writer
    held = set(writer.rows)  # type: ignore[attr-defined]

    # The old payer answers in full now, without the Coverage it no longer holds.
    client.bundle = _bundle(a_patient(), {**a_coverage("c2"), "status": "cancelled"})
    assert replay(ports, exchange_id, actor="ops", replay_key="again-1")
    assert not replay(ports, exchange_id, actor="ops", replay_key="again-1")  # once per key
    assert proceed(ports, exchange_id, _parse).state is ExchangeState.COMPLETED
    done = ports.exchanges.current(exchange_id)
    assert done.imported_patient_id == partial.imported_patient_id
    assert done.error_code is None and done.replay_count == 1
    rows = writer.rows  # type: ignore[attr-defined]
    kinds = sorted(resource["resourceType"] for resource, _, _ in rows.values())
    # The old Coverage removed; the old payer's Patient, ours for the member and the
    # receipt updated.
    assert kinds == ["Coverage", "Patient", "Patient", "Provenance"]
    assert len(set(rows) - held) == 1  # the new Coverage


def test_another_old_payer_that_disagrees_about_an_identifier_ends_in_conflict() -> None:
    client = _client()
    ports = _ports(client, FakeClock())
    other = Partner("other-plan", "Other Plan", "1679576722", "http://other/fhir")
    ports = unit_with(ports, partners=InMemoryPartnerDirectory(OLD_PLAN, other))
    first = _submit(ports, an_exchange_request())
    assert proceed(ports, first, _parse).state is ExchangeState.COMPLETED
    client.bundle = _bundle(a_patient(), {**a_coverage(), "status": "cancelled"})
    second = _submit(ports, an_exchange_request(old_payer="other-plan"))
    assert proceed(ports, second, _parse).state is ExchangeState.CONFLICT
    record = ports.exchanges.get(second)
    (conflict,) = record.transitions[-1].detail["completeness"]["conflicts"]  # type: ignore[index]
    assert conflict["resource_type"] == "Coverage" and conflict["paths"] == ["status"]
    # One Patient for the member, whichever old payer sent what (ADR 0054).
    assert record.imported_patient_id == ports.exchanges.current(first).imported_patient_id
    assert record.error_code == "conflict"


def test_a_later_page_down_on_every_attempt_ends_the_exchange_partial_on_the_last() -> None:
    """Each attempt but the last fails on the missing page and is retried; the last keeps
    the pages read before it and the exchange ends partial, naming the page."""
    clock = FakeClock()
    client = FakePartnerClient(
        match=MemberMatchResult("urn:umb", "U1", "Patient/p1"),
        bundle=BUNDLE,
        page_missing_until_last=True,
    )
    ports = _ports(client, clock)
    exchange_id = _submit(ports, an_exchange_request())
    result = proceed(ports, exchange_id, _parse)
    while not result.done and result.retry_at is not None:
        clock.now = result.retry_at
        result = proceed(ports, exchange_id, _parse)
    record = ports.exchanges.current(exchange_id)
    assert record.state is ExchangeState.PARTIAL, (record.state, record.error_code)
    everything = [op for op, _ in client.calls if op == "everything"]
    assert len(everything) == ports.retry_policy.max_attempts
    assert "page 2" in orjson.dumps(record.transitions[-1].detail).decode()
