"""The exchange use cases on a real database, with the partner behind httpx.MockTransport."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from payerbridge.api.schemas import ExchangeCreate
from payerbridge.bootstrap import Platform, build_platform
from payerbridge.clock import utcnow
from payerbridge.config import load_settings
from payerbridge.consent.model import ConsentRole
from payerbridge.consent.service import consent_recorded
from payerbridge.exchange.calls.outbound import admit_call, record_outcome
from payerbridge.exchange.intake.submission import ExchangeSubmission, request_hash, submit_exchange
from payerbridge.exchange.model import Attempt, ExchangeState, Move, NewExchange, Stamp
from payerbridge.exchange.steps.machine import proceed
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.fhir.member_match import build_member_match_response
from payerbridge.partners.answers import Outbound
from payerbridge.partners.client import HttpxPartnerClient
from payerbridge.routing.enrolment import StorePartner, store_partner
from payerbridge.routing.model import Partner
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ExchangeId, PartnerId
from tests.builders import (
    a_coverage,
    a_patient,
    a_submitted_exchange,
    an_exchange_request,
    unit_with,
)
from tests.servers import new_signing_key


def old_payer(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/$member-match"):
        assert request.headers["Idempotency-Key"].endswith(":member-match")
        return httpx.Response(
            200,
            json=build_member_match_response(
                identifier_system="urn:umb", identifier_value="U1", member_id="p1"
            ),
        )
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": a_patient()}, {"resource": a_coverage()}],
    }
    return httpx.Response(200, content=orjson.dumps(bundle))


@pytest.fixture
def platform(tmp_path: Path, database_env: Callable[[], dict[str, str]]):  # type: ignore[no-untyped-def]
    env = database_env()
    settings = load_settings(data_dir=tmp_path, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))
    platform = build_platform(settings, partner_transport=httpx.MockTransport(old_payer))
    store_partner(
        StorePartner(Partner("old-plan", "Old Plan", "1245319599", "http://old/fhir"), "test"),
        platform.units.partners(),
    )
    yield platform
    platform.close()


def submit(platform: Platform, raw: dict[str, Any]) -> str:
    return a_submitted_exchange(platform.units.exchange(), raw, client_id="tester")


def test_each_transition_commits_with_its_audit_event_and_steps_do_not_repeat(
    platform: Platform,
) -> None:
    ports = platform.units.exchange()
    exchange_id = submit(platform, an_exchange_request())
    assert proceed(ports, exchange_id, _parse).state is ExchangeState.COMPLETED
    # A restart that runs the exchange again changes nothing.
    assert proceed(unit_with(ports, client=_NoCalls()), exchange_id, _parse).done
    record = platform.exchanges.get(exchange_id)
    assert record.state is ExchangeState.COMPLETED
    assert [t.seq for t in record.transitions] == list(range(1, 10))
    audit = platform.audit.for_entity("Exchange", exchange_id)
    assert [(a["detail"]["from"], a["outcome"]) for a in audit] == [
        (t.from_state, t.to_state) for t in record.transitions
    ]
    assert audit[0]["request_id"] == "r1" and audit[0]["actor"] == "tester"
    assert record.resource_count == 3  # Patient, Coverage and our Provenance
    # ... and our Patient for the member, which the plan held none for (ADR 0054).
    assert platform.members.count(source_prefix=f"exchange:{exchange_id}") == 4
    assert "Garcia" not in orjson.dumps(audit).decode()


def test_retrieve_stores_payload_and_resources_in_one_commit_and_a_kept_payload_resumes(
    platform: Platform,
) -> None:
    ports = platform.units.exchange()
    at_once = submit(platform, an_exchange_request())
    assert proceed(ports, at_once, _parse).state is ExchangeState.COMPLETED
    assert [t.to_state for t in platform.exchanges.get(at_once).transitions][-4:] == [
        "retrieving",
        "received",
        "normalized",
        "completed",
    ]

    # An exchange left at ``received`` with its payload apart (a build that normalized in a
    # commit of its own, stopped between the two) is finished by normalize on resume.
    kept = submit(platform, an_exchange_request())
    _move(platform, kept, *_TO_MATCHED)
    body = old_payer(httpx.Request("GET", "http://old/fhir/Patient/p1/$everything")).content
    with platform.transactions.begin() as unit:
        platform.exchanges.within(unit).save_payload(kept, body.decode(), "sha", ports.clock())
        _advance(platform, unit, kept, ExchangeState.RETRIEVING, ExchangeState.RECEIVED)
    resumed = proceed(unit_with(ports, client=_NoCalls()), kept, _parse)
    assert resumed.state is ExchangeState.COMPLETED  # from the payload kept: no call
    assert platform.members.count(source_prefix=f"exchange:{kept}") == 4


def test_a_rejected_payload_fails_the_exchange_and_stores_nothing(platform: Platform) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/$member-match"):
            return old_payer(request)
        return httpx.Response(200, json={"resourceType": "Bundle", "entry": []})

    client = HttpxPartnerClient(
        outbound=Outbound(timeout_seconds=5, transport=httpx.MockTransport(broken)),
        user_agent="test",
        key=new_signing_key(),
    )
    ports = unit_with(platform.units.exchange(), client=client)
    exchange_id = submit(platform, an_exchange_request())
    assert proceed(ports, exchange_id, _parse).state is ExchangeState.FAILED
    record = platform.exchanges.get(exchange_id)
    assert record.state is ExchangeState.FAILED
    assert record.error_code == "invalid-payload"
    assert platform.members.count(source_prefix="exchange:") == 0


@pytest.mark.parametrize("left_in", [ExchangeState.VALIDATED, ExchangeState.CONSENT_VERIFIED])
def test_a_prepare_step_cut_off_between_its_transitions_resumes(
    platform: Platform, left_in: ExchangeState
) -> None:
    ports = platform.units.exchange()
    exchange_id = submit(platform, an_exchange_request())
    for state in (ExchangeState.VALIDATED, ExchangeState.CONSENT_VERIFIED):
        _move(platform, exchange_id, state, actor="crash")
        if state is left_in:
            break
    assert proceed(ports, exchange_id, _parse).state is ExchangeState.COMPLETED
    record = platform.exchanges.get(exchange_id)
    assert record.state is ExchangeState.COMPLETED
    states = [t.to_state for t in record.transitions]
    assert states.count("consent_verified") == 1 and states.count("route_selected") == 1


def test_a_match_under_review_at_the_old_payer_stops_in_manual_review(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> None:
    """The old payer's reviewer is looking at the match: we wait for a person instead of
    failing the exchange or treating the 422 as a consent refusal."""
    from payerbridge.errors import MatchUnderReview
    from payerbridge.fhir.outcome import outcome_for

    def reviewing(request: httpx.Request) -> httpx.Response:
        status, body = outcome_for(MatchUnderReview("review case rc-1 is open"))
        return httpx.Response(status, json=body)

    env = database_env()
    settings = load_settings(data_dir=tmp_path, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))
    platform = build_platform(settings, partner_transport=httpx.MockTransport(reviewing))
    try:
        store_partner(
            StorePartner(Partner("old-plan", "Old Plan", "1245319599", "http://old/fhir"), "test"),
            platform.units.partners(),
        )
        exchange_id = submit(platform, an_exchange_request())
        result = proceed(platform.units.exchange(), exchange_id, _parse)
        record = platform.exchanges.get(exchange_id)
        assert result.done and record.state is ExchangeState.MANUAL_REVIEW
        assert record.error_code == "partner-review" and "rc-1" in (record.error_text or "")
    finally:
        platform.close()


def _waiting_on_member_match(platform: Platform, exchange_id: str, *, calls_made: int) -> None:
    """The row as a run leaves it when the $member-match call waits to be tried again
    after ``calls_made`` calls: what a workflow recovered anywhere resumes from."""
    ports = platform.units.exchange()
    if platform.exchanges.current(ExchangeId(exchange_id)).state is ExchangeState.SUBMITTED:
        _move(platform, exchange_id, *_TO_ROUTED)  # as prepare leaves it
    now = ports.clock()
    attempt = Attempt("member-match", calls_made, now, now, "503", {})
    with ports:
        ports.exchanges.record_attempt(ExchangeId(exchange_id), attempt, at=now)


def test_a_call_the_open_breaker_holds_back_waits_for_it_without_spending_an_attempt(
    platform: Platform,
) -> None:
    """A short outage must not dead-letter every exchange in flight: the held-back call
    is parked until the breaker's probe is due, on the attempt it would have made, and
    the probe that finds the partner answering lets it go (ADR 0047)."""
    from datetime import timedelta

    from payerbridge.exchange.calls.outbound import PARKED_FOR_BREAKER

    ports = platform.units.exchange()
    policy = ports.retry_policy
    exchange_id = submit(platform, an_exchange_request())
    now = ports.clock()
    _open_breaker(ports)
    _waiting_on_member_match(platform, exchange_id, calls_made=3)

    held = proceed(ports, exchange_id, _parse)
    assert held.state is ExchangeState.ROUTE_SELECTED and not held.done
    assert held.retry_at is not None
    assert held.retry_at >= now + timedelta(seconds=policy.breaker_cooldown_seconds)
    record = platform.exchanges.get(exchange_id)
    assert record.attempts == 3 and record.last_error == PARKED_FOR_BREAKER  # spent none
    assert record.next_attempt_at == held.retry_at
    (parked,) = [
        e for e in platform.audit.for_entity("Exchange", exchange_id) if e["outcome"] == "parked"
    ]
    assert parked["detail"]["reason"] == "circuit-open"

    # Once its probe is due, the exchange that wakes first probes (GET metadata), and the
    # call that was held back goes out.
    later = unit_with(ports, clock=lambda: held.retry_at)
    done = proceed(later, exchange_id, _parse)
    assert done.state is ExchangeState.COMPLETED
    assert platform.breakers.get("http://old/fhir").status.value == "closed"
    probe = platform.audit.for_entity("PartnerEndpoint", "http://old/fhir")[-1]
    assert probe["action"] == "breaker.closed" and probe["detail"]["probe"]["status"] == 200


def test_a_failed_call_spends_its_attempt_waits_its_turn_and_the_last_one_dead_letters(
    platform: Platform,
) -> None:
    """The row carries a waiting call: a run resumed before the call is due makes no
    call, and one resumed after makes the attempt the row says comes next."""
    calls = []

    def unavailable(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(503)

    client = HttpxPartnerClient(
        outbound=Outbound(timeout_seconds=5, transport=httpx.MockTransport(unavailable)),
        user_agent="test",
        key=new_signing_key(),
    )
    # A first retry at least 27 s away, whatever the jitter draws: "not due yet" must not
    # depend on how fast this machine gets to the second proceed.
    policy = dataclasses.replace(
        platform.units.exchange_wiring.retry_policy, base_delay_seconds=30.0, max_attempts=6
    )
    ports = unit_with(
        platform.units.exchange(), client=client, retry_policy=policy, random=lambda: 0.9
    )
    exchange_id = submit(platform, an_exchange_request())
    first = proceed(ports, exchange_id, _parse)
    assert first.state is ExchangeState.ROUTE_SELECTED and first.retry_at is not None
    record = platform.exchanges.get(exchange_id)
    assert record.attempts == 1 and record.next_attempt_at == first.retry_at
    assert record.step_started_at is not None and record.current_step == "member-match"

    early = proceed(ports, exchange_id, _parse)
    assert early == first and len(calls) == 1  # not due yet: no call

    last = 6  # the operator's attempt limit (none by default: the deadline alone)
    _waiting_on_member_match(platform, exchange_id, calls_made=last - 1)
    gave_up = proceed(ports, exchange_id, _parse)
    assert gave_up.state is ExchangeState.DEAD_LETTERED and gave_up.done
    record = platform.exchanges.get(exchange_id)
    assert record.error_code == "attempts-exhausted" and record.attempts == last
    assert len(calls) == 2


def _advance(
    platform: Platform,
    unit: UnitOfWork,
    exchange_id: str,
    *states: ExchangeState,
    actor: str = "test",
    expected: ExchangeState | None = None,
) -> None:
    platform.exchanges.within(unit).advance(
        ExchangeId(exchange_id),
        [Move(state) for state in states],
        Stamp(platform.units.exchange().clock(), actor),
        expected=expected,
    )


def _move(
    platform: Platform,
    exchange_id: str,
    *states: ExchangeState,
    actor: str = "test",
    expected: ExchangeState | None = None,
) -> None:
    with platform.transactions.begin() as unit:
        _advance(platform, unit, exchange_id, *states, actor=actor, expected=expected)


def _parse(raw: dict[str, Any]) -> Any:
    return ExchangeCreate.model_validate(raw).to_domain()


# The moves prepare commits, and the match after them: a row left there by a run.
_TO_ROUTED = (ExchangeState.VALIDATED, ExchangeState.CONSENT_VERIFIED, ExchangeState.ROUTE_SELECTED)
_TO_MATCHED = (*_TO_ROUTED, ExchangeState.MEMBER_MATCHED)


class _NoCalls:
    """A partner client for a run that must not call the partner."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the partner was called ({name})")


def _open_breaker(ports: ExchangeUnit, endpoint: str = "http://old/fhir") -> None:
    """As many failed calls to ``endpoint`` as open its breaker."""
    partner = Partner("old-plan", "Old Plan", "1245319599", endpoint)
    for _ in range(ports.retry_policy.breaker_failure_threshold):
        record_outcome(ports, partner, succeeded=False)


def test_a_payload_received_again_replaces_the_earlier_one(platform: Platform) -> None:
    exchange_id = submit(platform, an_exchange_request())
    at = platform.units.exchange().clock()
    for body, digest in (('{"first":1}', "a" * 64), ('{"second":2}', "b" * 64)):
        with platform.transactions.begin() as unit:
            platform.exchanges.within(unit).save_payload(exchange_id, body, digest, at)
    assert platform.exchanges.payload(exchange_id) == '{"second":2}'
    assert platform.exchanges.payload_sha256(exchange_id) == "b" * 64


def test_a_move_from_a_state_the_exchange_has_left_is_refused_and_writes_nothing(
    platform: Platform,
) -> None:
    from payerbridge.errors import IllegalTransition, NotFound

    ports = platform.units.exchange()
    exchange_id = submit(platform, an_exchange_request())
    # Read in `submitted`; meanwhile an operator stops it.
    _move(platform, exchange_id, ExchangeState.FAILED, actor="operator")
    audited = len(platform.audit.for_entity("Exchange", exchange_id))
    moved_on = ExchangeState.SUBMITTED
    with (
        pytest.raises(IllegalTransition, match="'failed'"),
        platform.transactions.begin() as unit,
    ):
        platform.exchanges.within(unit).save_payload(exchange_id, "{}", "c" * 64, ports.clock())
        _advance(platform, unit, exchange_id, ExchangeState.VALIDATED, expected=moved_on)
    record = platform.exchanges.get(exchange_id)
    assert record.state is ExchangeState.FAILED
    assert platform.exchanges.payload_sha256(exchange_id) is None  # the unit rolled back
    assert len(platform.audit.for_entity("Exchange", exchange_id)) == audited
    assert [t.to_state for t in record.transitions] == ["submitted", "failed"]
    with pytest.raises(NotFound):
        _move(
            platform, "no-such-exchange", ExchangeState.VALIDATED, expected=ExchangeState.SUBMITTED
        )
    # From the state it is in, the same move goes through with the next seq.
    other = submit(platform, an_exchange_request())
    _move(platform, other, ExchangeState.VALIDATED, expected=ExchangeState.SUBMITTED)
    assert [t.seq for t in platform.exchanges.get(other).transitions] == [1, 2]


def test_a_move_whose_commit_fails_leaves_the_exchange_and_its_history_as_they_were(
    platform: Platform,
) -> None:
    """On PostgreSQL a move's statements go out together and an error comes back only
    with the COMMIT; the transaction must still roll back as a whole."""
    from payerbridge.errors import StoreConflict
    from payerbridge.store.dbapi import DialectSql

    ports = platform.units.exchange()
    exchange_id = submit(platform, an_exchange_request())
    audited = len(platform.audit.for_entity("Exchange", exchange_id))

    with pytest.raises(StoreConflict), platform.transactions.begin() as unit:
        sql = DialectSql.of(platform.engine.dialect)
        unit.cursor().execute(  # the move's own transition collides with this one
            sql.sql(
                "INSERT INTO exchange_transitions (exchange_id, seq, from_state, to_state, "
                "at, actor) VALUES (:id, 2, 'submitted', 'validated', :at, 'intruder')"
            ),
            {"id": exchange_id, "at": sql.timestamp(ports.clock())},
        )
        _advance(
            platform, unit, exchange_id, ExchangeState.VALIDATED, expected=ExchangeState.SUBMITTED
        )
    record = platform.exchanges.get(exchange_id)
    assert record.state is ExchangeState.SUBMITTED
    assert [(t.seq, t.actor) for t in record.transitions] == [(1, "tester")]
    assert len(platform.audit.for_entity("Exchange", exchange_id)) == audited
    # The connection went back to the pool clean: the same move now goes through.
    _move(platform, exchange_id, ExchangeState.VALIDATED, expected=ExchangeState.SUBMITTED)
    assert [t.seq for t in platform.exchanges.get(exchange_id).transitions] == [1, 2]


def test_a_move_that_waited_for_another_writer_sees_where_it_left_the_exchange(
    platform: Platform,
) -> None:
    """Two writers read the exchange in one state; the second waits for the first's row
    lock, then finds the state gone and writes nothing. Seqs come from the locked row
    (``last_seq``): on PostgreSQL a statement that waited for a row lock sees that row
    as the other writer left it but other tables as they were when it started."""
    import threading
    import time

    from payerbridge.errors import IllegalTransition

    exchange_id = submit(platform, an_exchange_request())
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            _move(
                platform,
                exchange_id,
                ExchangeState.FAILED,
                actor="second",
                expected=ExchangeState.SUBMITTED,
            )
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    second = threading.Thread(target=second_writer)
    with platform.transactions.begin() as unit:
        _advance(
            platform,
            unit,
            exchange_id,
            ExchangeState.VALIDATED,
            actor="first",
            expected=ExchangeState.SUBMITTED,
        )
        second.start()
        time.sleep(0.5)  # the second writer's statement is now waiting for the row
    second.join(10)
    assert [type(e) for e in errors] == [IllegalTransition]
    # The lock path (an operator's transition) numbers after it, from the row.
    _move(platform, exchange_id, ExchangeState.FAILED, actor="operator")
    record = platform.exchanges.get(exchange_id)
    assert [(t.seq, t.to_state) for t in record.transitions] == [
        (1, "submitted"),
        (2, "validated"),
        (3, "failed"),
    ]
    with platform.engine.connect() as connection:
        last_seq = connection.execute(
            text("SELECT last_seq FROM exchanges WHERE id = :id"), {"id": exchange_id}
        ).scalar_one()
    assert last_seq == 3


def test_the_opt_in_and_the_partner_read_back_as_they_were_kept(platform: Platform) -> None:
    """The hops' reads are DB-API SQL: what they return equals what was written."""
    ports = platform.units.exchange()
    exchange_id = submit(platform, an_exchange_request())
    consent_id = platform.exchanges.get(exchange_id).consent_id
    kept = platform.consents.get(consent_id)
    assert kept is not None
    assert kept == platform.consents.for_member(kept.record.member_id, kept.role)[0]
    assert kept.record.period_start.utcoffset() is not None  # aware, as written
    assert platform.consents.get("no-such-consent") is None
    partner = ports.partners.get("old-plan")
    assert partner == Partner("old-plan", "Old Plan", "1245319599", "http://old/fhir")
    assert ports.partners.get("no-such-partner") is None


def test_the_breaker_and_the_idempotency_key_read_back_as_they_were_kept(
    platform: Platform,
) -> None:
    """The reads before every call and every submission are DB-API SQL too."""
    from payerbridge.exchange.model import BreakerState, BreakerStatus

    ports = platform.units.exchange()
    _open_breaker(ports)
    opened = platform.breakers.get("http://old/fhir")
    assert (
        opened.status is BreakerStatus.OPEN and opened == platform.breakers.all()["http://old/fhir"]
    )
    assert opened.open_until is not None and opened.open_until.utcoffset() is not None
    assert platform.breakers.get("http://other/fhir") == BreakerState()
    assert platform.breakers.unhealthy() == [("http://old/fhir", "old-plan", opened)]
    (event,) = [e for e in platform.audit.for_entity("PartnerEndpoint", "http://old/fhir")]
    assert (event["action"], event["detail"]["from"]) == ("breaker.opened", "closed")

    raw = ExchangeCreate.model_validate(an_exchange_request()).model_dump(mode="json")
    submitted = submit_exchange(
        ExchangeSubmission(
            ExchangeCreate.model_validate(raw).to_domain(),
            raw,
            client_id="tester",
            idempotency_key="key-1",
        ),
        ports,
    )
    found = platform.exchanges.find_by_idempotency_key("tester", "key-1")
    assert found is not None and found.exchange_id == submitted.exchange_id
    assert found.request_hash == request_hash(raw) and not found.created
    assert platform.exchanges.find_by_idempotency_key("someone-else", "key-1") is None


def test_an_opt_in_commits_with_its_exchange_so_a_lost_race_keeps_none(platform: Platform) -> None:
    """A submission that loses the race for its Idempotency-Key (the unique index decides)
    rolls back the opt-in it recorded in the same transaction, and gets the winner."""
    ports = platform.units.exchange()
    raw = ExchangeCreate.model_validate(an_exchange_request()).model_dump(mode="json")
    first = submit_exchange(
        ExchangeSubmission(
            ExchangeCreate.model_validate(raw).to_domain(),
            raw,
            client_id="tester",
            idempotency_key="k",
        ),
        ports,
    )
    kept = platform.consents.for_member(
        platform.exchanges.get(first.exchange_id).request["new_coverage"]["member_id"],
        ConsentRole.RECEIVE,
    )
    assert len(kept) == 1

    from payerbridge.errors import StoreConflict

    stored = dataclasses.replace(  # as a racing submission records its own opt-in
        kept[0],
        record=dataclasses.replace(
            kept[0].record, consent_id="racing-opt-in", resource_hash="another"
        ),
    )
    with pytest.raises(StoreConflict), platform.transactions.begin() as unit:
        platform.consents.add(
            unit, stored, event=consent_recorded(stored, actor="tester", request_id=None)
        )
        platform.exchanges.within(unit).create(
            NewExchange(
                exchange_id=ExchangeId("racing-exchange"),
                partner_id=PartnerId("old-plan"),
                client_id="tester",
                request=raw,
                request_hash=request_hash(raw),
                at=ports.clock(),
                idempotency_key="k",
                consent_id="racing-opt-in",
            )
        )
    assert platform.consents.get("racing-opt-in") is None
    assert len(platform.consents.for_member(kept[0].record.member_id, ConsentRole.RECEIVE)) == 1


def test_two_workers_failing_first_at_once_on_a_new_endpoint_count_both_failures(
    platform: Platform,
) -> None:
    """The endpoint has no breaker row yet. The second worker's lock waits for the row the
    first one is creating (its insert does nothing), then counts on from what it left."""
    import threading
    import time

    from payerbridge.store.breakers import SqlBreakerStore

    ports = platform.units.exchange()
    theirs = unit_with(ports, breakers=SqlBreakerStore(platform.engine))
    new = Partner("old-plan", "Old Plan", "1245319599", "http://new/fhir")
    errors: list[BaseException] = []

    def second_worker() -> None:
        try:
            record_outcome(theirs, new, succeeded=False)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    second = threading.Thread(target=second_worker)
    now = ports.clock()
    with ports:
        found = ports.breakers.lock(new.fhir_base, new.id, at=now)
        second.start()
        time.sleep(0.5)  # the second worker is now waiting for the row
        failed = dataclasses.replace(found, consecutive_failures=1)
        ports.breakers.save(new.fhir_base, new.id, failed, at=now)
    second.join(10)
    assert errors == []
    assert platform.breakers.get(new.fhir_base).consecutive_failures == 2


def test_a_healthy_breaker_is_trusted_briefly_and_a_write_of_our_own_drops_the_trust(
    platform: Platform,
) -> None:
    """Two stores on one database stand for two workers: the breaker the other worker
    opens holds our calls back once our short trust in the healthy one has passed."""
    from payerbridge.store.breakers import SqlBreakerStore

    # The trust is timed on a clock of the test's own: a slow database (CI's PostgreSQL
    # under load) must not end it between the two reads.
    seconds = [0.0]
    ports = platform.units.exchange()
    ours = unit_with(
        ports,
        breakers=SqlBreakerStore(
            platform.engine, healthy_trusted_seconds=0.3, monotonic=lambda: seconds[0]
        ),
    )
    theirs = unit_with(ports, breakers=SqlBreakerStore(platform.engine))
    old = Partner("old-plan", "Old Plan", "1245319599", "http://old/fhir")
    now = ports.clock()
    assert admit_call(ours, old, now).allowed
    _open_breaker(theirs)
    assert admit_call(ours, old, now).allowed
    seconds[0] += 0.4
    assert not admit_call(ours, old, now).allowed

    # Our own write is not trusted past: a failure we record makes the next call read.
    other = dataclasses.replace(old, base_url="http://other/fhir")
    assert admit_call(ours, other, now).allowed
    _open_breaker(ours, other.fhir_base)
    assert not admit_call(ours, other, now).allowed


def test_retrieval_without_a_matched_member_fails_as_such(platform: Platform) -> None:
    ports = platform.units.exchange()
    exchange_id = submit(platform, an_exchange_request())
    # Matched, but the member's reference was never kept.
    _move(platform, exchange_id, *_TO_MATCHED)
    assert proceed(ports, exchange_id, _parse).state is ExchangeState.FAILED
    record = platform.exchanges.get(exchange_id)
    assert record.error_code == "no-matched-member"


def test_a_partners_rate_limit_is_shared_by_every_worker_and_spends_no_attempt(
    platform: Platform, tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> None:
    """Two platforms on one database (two workers): the partner's announced rate counts
    both workers' calls; a call past it waits for its turn and is not an attempt."""
    from datetime import UTC, datetime, timedelta

    from payerbridge.routing.enrolment import SetOperations, set_operations
    from payerbridge.routing.operations import RateLimit

    limit = RateLimit(2, 60.0)
    set_operations(
        SetOperations(PartnerId("old-plan"), {"rate_limit": limit.to_json()}, "test"),
        platform.units.partners(),
    )
    other = build_platform(platform.settings)  # the second worker, same database
    try:
        now = datetime.now(UTC)

        def take_turn(worker: Platform) -> datetime | None:
            with worker.transactions.begin() as unit:
                return worker.breakers.within(unit).admit_rate(
                    PartnerId("old-plan"), limit, now=now
                )

        assert take_turn(platform) is None
        assert take_turn(other) is None
        turn = take_turn(platform)
        assert turn is not None and timedelta(seconds=29) < turn - now <= timedelta(seconds=30)
        # An exchange asked now waits for that turn, with no attempt spent.
        exchange_id = submit(platform, an_exchange_request())
        waiting = proceed(platform.units.exchange(), ExchangeId(exchange_id), _parse)
        assert waiting.retry_at is not None and not waiting.done
        record = platform.exchanges.get(ExchangeId(exchange_id))
        assert (record.state, record.attempts) == (ExchangeState.ROUTE_SELECTED, 0)
        assert "calls per 60 s" in (record.last_error or "")
    finally:
        other.close()


def test_a_write_outside_the_unit_of_work_is_refused_and_the_unit_is_reusable(
    platform: Platform,
) -> None:
    """ADR 0051: the unit's stores write only inside ``with uow:``; outside they read, and
    one unit holds one transaction at a time but may begin the next."""
    exchange_id = submit(platform, an_exchange_request())
    uow = platform.units.exchange()
    moves = [Move(ExchangeState.VALIDATED)]
    with pytest.raises(RuntimeError, match="outside a unit of work"):
        uow.exchanges.advance(ExchangeId(exchange_id), moves, Stamp(utcnow(), "test"))
    with pytest.raises(RuntimeError, match="outside `with uow:`"):
        uow.record()
    with uow:
        with pytest.raises(RuntimeError, match="already in a transaction"):
            uow.__enter__()
        uow.exchanges.advance(ExchangeId(exchange_id), moves, Stamp(uow.now, "test"))
    assert uow.exchanges.current(ExchangeId(exchange_id)).state is ExchangeState.VALIDATED
    with uow:  # the next transaction, on the same unit
        uow.exchanges.advance(
            ExchangeId(exchange_id), [Move(ExchangeState.FAILED, "x")], Stamp(uow.now, "test")
        )
    assert uow.exchanges.current(ExchangeId(exchange_id)).state is ExchangeState.FAILED
