"""A $member-match writes everything in one transaction, or nothing: the attempt, the
decision with its evidence and audit events, the UMB and the identity-graph links. Bulk
decisions are stored in batches with their review cases and audit events."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from itertools import count
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from payerbridge.bootstrap import Platform, build_platform
from payerbridge.config import load_settings
from payerbridge.consent.model import Requester
from payerbridge.errors import MatchError, PayerBridgeError, StoreConflict, TooManyAttempts
from payerbridge.fhir.member_match import parse_member_match_request
from payerbridge.identity.matching.decision import BULK, SINGLE_EXCHANGE, Matcher
from payerbridge.identity.matching.model import DecisionId, MatchDecision, MatchOutcome
from payerbridge.identity.model import ReviewDecision, ReviewOpening, StandardRecord
from payerbridge.identity.ports import DecisionToRecord
from payerbridge.identity.review_queue import review_opening
from payerbridge.identity.service import (
    AttemptLimit,
    MatchedMember,
    MemberMatchCommand,
    MemberMatchRules,
    decide_request,
    decision_audit_event,
    match_member,
    model_for,
    record_batch_decisions,
    request_record,
)
from payerbridge.store.members import opened_resource
from payerbridge.store.tables import (
    audit_events,
    fhir_resources,
    identity_attempts,
    identity_decisions,
    identity_links,
    identity_reviews,
)
from payerbridge.types import ClientId, MemberId
from tests.builders import a_coverage, a_patient

AT = datetime(2027, 1, 1, tzinfo=UTC)
IDS = count()
TABLES = (identity_attempts, identity_decisions, identity_reviews, identity_links, audit_events)


@pytest.fixture
def platform(tmp_path: Path, database_env: Callable[[], dict[str, str]]) -> Iterator[Platform]:
    env = database_env()
    settings = load_settings(data_dir=tmp_path, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))
    platform = build_platform(settings)
    members = tmp_path / "members.ndjson"
    members.write_bytes(
        b"\n".join(
            orjson.dumps(r)
            for r in (
                a_patient("ana", given="Ana", member_id="M100"),
                a_coverage("cov-ana", patient="ana", member_id="M100", subscriber_id="S100"),
                a_patient(
                    "noah", given="Noah", birth_date="1975-06-07", gender="male", member_id="M200"
                ),
                a_coverage("cov-noah", patient="noah", member_id="M200", subscriber_id="S200"),
            )
        )
    )
    assert platform.import_members(members).accepted
    yield platform
    platform.close()


def request_for(given: str, birth_date: str, member_id: str) -> Any:
    patient = {
        "resourceType": "Patient",
        "id": "1",
        "name": [{"family": "Garcia", "given": [given]}],
        "birthDate": birth_date,
    }
    coverage = {
        "resourceType": "Coverage",
        "id": "c",
        "status": "active",
        "identifier": [
            {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}
                    ]
                },
                "value": member_id,
            }
        ],
        "beneficiary": {"reference": "Patient/1"},
        "payor": [{"display": "Old"}],
    }
    link = {
        "resourceType": "Coverage",
        "id": "n",
        "status": "active",
        "identifier": [{"system": "http://new.example/mb", "value": "NEW-1"}],
        "beneficiary": {"reference": "Patient/1"},
        "payor": [{"display": "New"}],
    }
    return parse_member_match_request(
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "MemberPatient", "resource": patient},
                {"name": "CoverageToMatch", "resource": coverage},
                {"name": "CoverageToLink", "resource": link},
            ],
        }
    )


def rows(platform: Platform) -> dict[str, int]:
    with platform.engine.connect() as connection:
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in TABLES
        }


def patient(platform: Platform, member_id: str) -> dict[str, Any]:
    with platform.engine.connect() as connection:
        body = connection.execute(
            select(fhir_resources.c.body).where(fhir_resources.c.ref == f"Patient/{member_id}")
        ).scalar_one()
    return opened_resource(platform.engine, f"Patient/{member_id}", body)


def match(platform: Platform, request: Any, *, cards: int = 5) -> MatchedMember:
    """``match_member`` in a unit of its own; a refusal, committed, then raised."""
    with platform.transactions.begin() as unit:
        answer = match_member(command(request, cards), unit, platform.identity)
    if isinstance(answer, PayerBridgeError):
        raise answer
    return answer


def command(request: Any, cards: int = 5) -> MemberMatchCommand:
    rules = MemberMatchRules(
        SINGLE_EXCHANGE, AttemptLimit(cards, timedelta(hours=1)), "1245319599", "urn:umb"
    )
    requester = Requester(ClientId("newplan"), "1234567893")
    return MemberMatchCommand(request, None, requester, rules, request_id="r1")


def test_a_match_commits_its_attempt_decision_audit_umb_and_links_together(
    platform: Platform,
) -> None:
    before = rows(platform)

    matched = match(platform, request_for("Ana", "1980-02-03", "M100"))

    assert matched.member_id == "ana"
    after = rows(platform)
    assert {name: after[name] - before[name] for name in after} == {
        "identity_attempts": 1,
        "identity_decisions": 1,
        "identity_reviews": 0,
        "identity_links": 2,  # the UMB and the requester's CoverageToLink member id
        "audit_events": 2,  # the decision and the answer
    }
    umbs = [i for i in patient(platform, "ana")["identifier"] if i.get("system") == "urn:umb"]
    assert [i["value"] for i in umbs] == [matched.umb_value]
    assert [
        link.value for link in platform.identity.members_by_identifier(matched.umb_value, "urn:umb")
    ] == [matched.umb_value]

    again = match(platform, request_for("Ana", "1980-02-03", "M100"))

    assert again.umb_value == matched.umb_value  # handed out once, links not repeated
    assert rows(platform)["identity_links"] == after["identity_links"]


def test_a_failure_mid_match_leaves_nothing_half_written(platform: Platform) -> None:
    before, body = rows(platform), patient(platform, "ana")

    with pytest.raises(RuntimeError), platform.transactions.begin() as unit:
        answer = match_member(
            command(request_for("Ana", "1980-02-03", "M100")), unit, platform.identity
        )
        assert isinstance(answer, MatchedMember)
        raise RuntimeError("what the unit did next failed (the presented consent's writes)")

    assert rows(platform) == before
    assert patient(platform, "ana") == body  # no UMB handed out


def test_an_attempt_over_the_limit_is_recorded_and_nothing_else(platform: Platform) -> None:
    # Ana's birth date, her name a letter off, cards nobody holds: each a reviewer's call.
    for card in ("X1", "X2"):
        with pytest.raises(MatchError):
            match(platform, request_for("Anna", "1980-02-03", card), cards=2)
    before = rows(platform)

    with pytest.raises(TooManyAttempts):
        match(platform, request_for("Anna", "1980-02-03", "X3"), cards=2)

    after = rows(platform)
    assert {name: after[name] - before[name] for name in after} == {
        "identity_attempts": 1,
        "identity_decisions": 0,
        "identity_reviews": 0,
        "identity_links": 0,
        "audit_events": 0,
    }


def decided(
    platform: Platform, given: str, birth_date: str, member_id: str, decision_id: str
) -> MatchDecision:
    index = platform.identity
    record = request_record(request_for(given, birth_date, member_id))
    return decide_request(
        index, record, Matcher(model_for(index), BULK), AT, DecisionId(decision_id)
    )


def test_bulk_decisions_are_stored_with_review_cases_and_audit_events_or_not_at_all(
    platform: Platform,
) -> None:
    matched = decided(platform, "Ana", "1980-02-03", "M100", "d-match")
    unmatched = decided(platform, "Nobody", "1901-01-01", "Z9", "d-none")
    reviewed = dataclasses.replace(
        matched,
        decision_id=DecisionId("d-review"),
        member_id=None,
        outcome=MatchOutcome.REVIEW,
        candidate_ids=("ana",),
    )
    entries = [
        DecisionToRecord(
            decision,
            "cli",
            f"key-{i}",
            opening("case-1", decision) if decision is reviewed else None,
            decision_audit_event(decision, actor="cli", request_id=f"req-{i}"),
        )
        for i, decision in enumerate((matched, unmatched, reviewed))
    ]
    before = rows(platform)

    record_batch_decisions(entries, platform.units.identity())

    after = rows(platform)
    assert {name: after[name] - before[name] for name in after} == {
        "identity_attempts": 0,
        "identity_decisions": 3,
        "identity_reviews": 1,
        "identity_links": 0,
        "audit_events": 3,
    }
    stored = platform.identity.decision("d-match")
    assert stored is not None and stored["outcome"] == "match" and stored["member"] == "ana"
    assert stored["evidence"] == matched.evidence.to_dict()  # as decided, from its stored form
    case = platform.identity.review("case-1")
    assert case is not None and case.candidate_ids == ("ana",) and case.status == "open"
    assert platform.audit.for_entity("IdentityDecision", "d-none")[0]["outcome"] == "nomatch"

    fresh = DecisionToRecord(
        dataclasses.replace(unmatched, decision_id=DecisionId("d-new")),
        "cli",
        "key-9",
        None,
        entries[1].event,
    )
    with pytest.raises(StoreConflict):
        # d-match is stored already
        record_batch_decisions([fresh, entries[0]], platform.units.identity())
    assert rows(platform) == after
    assert platform.identity.decision("d-new") is None


def opening(review_id: str, decision: MatchDecision) -> ReviewOpening:
    return review_opening(review_id, StandardRecord(), decision.evidence, decision.candidate_ids)


def test_a_request_sent_again_finds_its_review_case_as_the_queue_shows_it(
    platform: Platform,
) -> None:
    """``latest_review`` (one statement on every request) reads what ``review`` reads."""
    matched = decided(platform, "Ana", "1980-02-03", "M100", "d-match")
    reviewed = dataclasses.replace(
        matched, decision_id=DecisionId("d-review"), outcome=MatchOutcome.REVIEW, member_id=None
    )
    record_batch_decisions(
        [
            DecisionToRecord(
                reviewed,
                "cli",
                "key-1",
                opening("case-1", reviewed),
                decision_audit_event(reviewed, actor="cli", request_id="req-1"),
            )
        ],
        platform.units.identity(),
    )
    assert platform.identity.latest_review("other", "key-1") is None
    opened = platform.identity.latest_review("cli", "key-1")
    assert opened is not None and opened.status == "open" and opened.decided_at is None
    assert opened == platform.identity.review("case-1")
    with platform.transactions.begin() as unit:
        platform.identity.decide_review(
            unit, ReviewDecision("case-1", 1, True, MemberId("ana"), "op", "card"), at=AT
        )
    accepted = platform.identity.latest_review("cli", "key-1")
    assert accepted == platform.identity.review("case-1")
    assert accepted is not None and accepted.member_id == "ana" and accepted.decided_at == AT


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9, minutes=30))]
        ),
    )
)
def test_the_hot_paths_sqlite_timestamps_are_the_text_sqlalchemy_writes(value: datetime) -> None:
    from sqlalchemy.dialects import sqlite

    from payerbridge.store.dbapi import DialectSql, sqlite_timestamp

    dialect = sqlite.dialect()
    bind = identity_decisions.c.decided_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    assert sqlite_timestamp(value) == bind(value)
    # and read back as SQLAlchemy reads them (the exchange store's hot reads)
    column = identity_decisions.c.decided_at.type
    read = column.dialect_impl(dialect).result_processor(dialect, None)
    assert read is not None
    expected = column.process_result_value(read(bind(value)), dialect)
    assert DialectSql(dialect).read_timestamp(sqlite_timestamp(value)) == expected == value
