"""Obligation rows on a real database (ADR 0037): an exchange's request clock written with
its submission and met by the move that follows the old payer's answer, the old payer's
answer clock it starts, the reason a hold notes; a review case's row kept once and met
when the case is decided; the report reading them back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from payerbridge.api.schemas import ExchangeCreate
from payerbridge.bootstrap import Platform, build_platform, utcnow
from payerbridge.compliance.clocks import Subject, SubjectType, new_clock
from payerbridge.compliance.model import Standing, StandingQuery
from payerbridge.compliance.obligations import ANSWER_WITHIN, REQUEST_AFTER_ENROLMENT
from payerbridge.compliance.report import compliance_report, report_json, report_window
from payerbridge.config import load_settings
from payerbridge.exchange.intake.submission import ExchangeSubmission, submit_exchange
from payerbridge.exchange.model import Attempt, ExchangeState
from payerbridge.exchange.moves import advance, arrival, note_attempt
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.routing.enrolment import StorePartner, store_partner
from payerbridge.routing.model import Partner
from payerbridge.store.tables import identity_decisions, obligation_clocks
from payerbridge.types import ClientId, ExchangeId
from tests.builders import an_exchange_request

S = ExchangeState


@pytest.fixture
def platform(tmp_path: Path, database_env: Callable[[], dict[str, str]]) -> Iterator[Platform]:
    env = database_env()
    platform = build_platform(
        load_settings(data_dir=tmp_path, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))
    )
    store_partner(
        StorePartner(Partner("old", "Old Plan", "1245319599", "http://old/fhir"), "test"),
        platform.units.partners(),
    )
    yield platform
    platform.close()


def _submit(platform: Platform, days_ago: int) -> ExchangeId:
    day = (utcnow() - timedelta(days=days_ago)).date().isoformat()
    raw = an_exchange_request("old")
    raw["new_coverage"]["start"] = day
    raw["consent"]["start"] = day
    body = ExchangeCreate.model_validate(raw)
    submitted = submit_exchange(
        ExchangeSubmission(body.to_domain(), raw, ClientId("plan"), None),
        platform.units.exchange(),
    )
    return submitted.exchange_id


def _rows(platform: Platform, subject: Subject) -> dict[str, object]:
    rows = platform.clock_reader.subject(subject)  # type: ignore[attr-defined]
    return {row.obligation: row for row in rows}


def test_an_exchange_keeps_its_request_clock_and_the_old_payers_answer_clock(
    platform: Platform,
) -> None:
    ports = platform.units.exchange()
    on_time, late = _submit(platform, 1), _submit(platform, 10)
    for exchange_id in (on_time, late):
        for target in (S.VALIDATED, S.CONSENT_VERIFIED, S.ROUTE_SELECTED):
            advance(ports, exchange_id, [arrival(target)])
    now = utcnow()
    held = Attempt("member-match", 0, now, now, "in maintenance", {"reason": "maintenance"})
    with ports:
        note_attempt(ports, late, held, at=now)
    for exchange_id in (on_time, late):
        advance(ports, exchange_id, [arrival(S.MEMBER_MATCHED)])
    advance(ports, on_time, [arrival(S.RETRIEVING)])
    advance(ports, on_time, [arrival(S.RECEIVED)])

    kept = _rows(platform, Subject(SubjectType.EXCHANGE, on_time))
    request, answer = kept[REQUEST_AFTER_ENROLMENT], kept[ANSWER_WITHIN]
    assert request.standing is Standing.MET and request.partner_id == "old"  # type: ignore[attr-defined]
    assert answer.standing is Standing.MET and answer.partner_id == "old"  # type: ignore[attr-defined]
    missed = _rows(platform, Subject(SubjectType.EXCHANGE, late))
    assert missed[REQUEST_AFTER_ENROLMENT].standing is Standing.MISSED  # type: ignore[attr-defined]
    assert missed[REQUEST_AFTER_ENROLMENT].reason == "maintenance"  # type: ignore[attr-defined]
    assert missed[ANSWER_WITHIN].done_at is None  # type: ignore[attr-defined]

    today = utcnow().date()
    window = report_window(
        (today - timedelta(days=20)).isoformat(),
        (today + timedelta(days=1)).isoformat(),
        platform.obligations.calendar.zone,
    )
    found = compliance_report(window, platform.clock_reader, platform.obligations, utcnow())
    shown = {entry["obligation"]: entry for entry in report_json(found)["obligations"]}
    request_counts = shown[REQUEST_AFTER_ENROLMENT]["counts"]
    assert (request_counts["met"], request_counts["missed"]) == (1, 1)
    assert shown[REQUEST_AFTER_ENROLMENT]["missed"]["reasons"] == {"maintenance": 1}
    assert shown[REQUEST_AFTER_ENROLMENT]["missed"]["subjects"][0]["subject_id"] == late


def test_a_no_match_answer_meets_both_clocks_at_once(platform: Platform) -> None:
    ports = platform.units.exchange()
    exchange_id = _submit(platform, 0)
    for target in (S.VALIDATED, S.CONSENT_VERIFIED, S.ROUTE_SELECTED):
        advance(ports, exchange_id, [arrival(target)])
    advance(ports, exchange_id, [arrival(S.FAILED, ExchangeReason.NO_MATCH)])
    kept = _rows(platform, Subject(SubjectType.EXCHANGE, exchange_id))
    assert {k: v.standing for k, v in kept.items()} == {  # type: ignore[attr-defined]
        REQUEST_AFTER_ENROLMENT: Standing.MET,
        ANSWER_WITHIN: Standing.MET,
    }


def test_a_review_cases_row_is_kept_once_and_met_when_settled(platform: Platform) -> None:
    clocks = platform.clocks
    received = datetime(2027, 3, 5, 20, 0, tzinfo=UTC)  # a Friday afternoon in New York
    subject = Subject(SubjectType.REVIEW, "case-1")
    for n in range(2):  # asked again while it waits: one row
        row = new_clock(
            clocks.obligations,
            ANSWER_WITHIN,
            subject,
            {"request_received": received + timedelta(hours=n)},
            clock_id=f"row-{n}",
            at=received,
        )
        with platform.transactions.begin() as unit:
            clocks.ledger.start(unit, row)
    (kept,) = platform.clock_reader.subject(subject)  # type: ignore[attr-defined]
    assert kept.id == "row-0" and kept.done_at is None
    decided = received + timedelta(days=4)  # Tuesday: after Monday's close
    with platform.transactions.begin() as unit:
        clocks.ledger.settle(unit, ANSWER_WITHIN, subject, done_at=decided)
        clocks.ledger.settle(unit, ANSWER_WITHIN, subject, done_at=decided + timedelta(days=1))
    (settled,) = platform.clock_reader.subject(subject)  # type: ignore[attr-defined]
    assert settled.done_at == decided and settled.standing is Standing.MISSED


def test_a_request_answered_at_once_is_read_as_met_from_its_decision_without_a_row(
    platform: Platform,
) -> None:
    at = datetime(2027, 3, 5, 20, 0, tzinfo=UTC)
    decisions = [
        ("d-match", "match", "single_exchange-abc"),
        ("d-none", "nomatch", "single_exchange-abc"),
        ("d-review", "review", "single_exchange-abc"),  # has a row of its own, its case's
        ("d-bulk", "match", "bulk-abc"),  # a bulk job's, not an online answer
    ]
    with platform.engine.begin() as connection:
        connection.execute(
            identity_decisions.insert(),
            [
                {
                    "id": decision_id,
                    "outcome": outcome,
                    "member_id": None,
                    "client_id": "newplan",
                    "request_key": decision_id,
                    "policy_version": policy,
                    "model_version": "m",
                    "decided_at": at,
                    "evidence": "{}",
                }
                for decision_id, outcome, policy in decisions
            ],
        )
    span = (at - timedelta(hours=1), at + timedelta(hours=1))
    read = list(platform.clock_reader.started_between(*span))
    assert {(c.subject.type, c.subject.id) for c in read} == {
        (SubjectType.REQUEST, "d-match"),
        (SubjectType.REQUEST, "d-none"),
    }
    assert all(c.obligation == ANSWER_WITHIN and c.done_at == at for c in read)
    assert {c.due_at for c in read} == {platform.obligations.answer(at, None, at).due_at}
    with platform.engine.connect() as connection:  # and none of them wrote a row
        assert connection.execute(select(func.count()).select_from(obligation_clocks)).scalar() == 0
    # counted in the database, and listed the first so many
    reader, risk, now = platform.clock_reader, platform.obligations.risk_windows(), utcnow()
    counted = reader.tally(*span, now=now, risk=risk)
    assert counted == {(ANSWER_WITHIN, SubjectType.REQUEST, Standing.MET, None, True): 2}
    first = reader.standing_rows(
        StandingQuery(*span, now, risk, [Standing.MET], obligation=ANSWER_WITHIN, limit=1)
    )
    assert [clock.subject.id for clock in first] == ["d-match"]
