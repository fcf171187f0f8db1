"""decide(): outcomes, margins, determinism and PHI-free evidence."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from payerbridge.errors import InvalidInput
from payerbridge.identity.demographics.standardize import Demographics, standard_record
from payerbridge.identity.matching.decision import (
    BULK,
    SINGLE_EXCHANGE,
    Matcher,
    MatchPolicy,
    decide,
)
from payerbridge.identity.matching.model import (
    DecisionId,
    DecisionReason,
    MatchOutcome,
    evidence_from_stored,
)
from payerbridge.identity.matching.scoring import default_model
from payerbridge.identity.model import StandardRecord
from payerbridge.types import MemberId

MODEL = default_model()
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ANA: dict[str, Any] = {
    "given": ["Ana"],
    "family": "Garcia",
    "birth_date": "1980-02-03",
    "sex": "female",
    "address_lines": ["12 Oak Street"],
    "postal_code": "62701",
    "phone": "217-555-0101",
    "member_id": "M-1234",
    "subscriber_id": "M-1234",
    "ssn": "123-45-6780",
}


def rec(**changes: Any) -> StandardRecord:
    fields = {**ANA, **changes}
    return standard_record(Demographics(**{k: v for k, v in fields.items() if v is not None}))


def run(
    request: StandardRecord,
    *candidates: tuple[str, StandardRecord],
    policy: MatchPolicy = SINGLE_EXCHANGE,
) -> Any:
    pairs = [(MemberId(member), record) for member, record in candidates]
    return decide(request, pairs, Matcher(MODEL, policy), AT, DecisionId("dec-1"))


@pytest.mark.parametrize("policy", [SINGLE_EXCHANGE, BULK])
def test_card_and_demographics_agree_is_a_rule_match(policy: MatchPolicy) -> None:
    decision = run(
        rec(),
        ("p1", rec()),
        ("p2", rec(given=["Luis"], birth_date="1975-06-01", member_id="M-9")),
        policy=policy,
    )
    assert (decision.outcome, decision.member_id) == (MatchOutcome.MATCH, "p1")
    assert decision.evidence.reason is DecisionReason.RULE
    # Ana is the subscriber: her member id is the subscriber id.
    assert decision.evidence.rule == "subscriber_card_birth_date_given_name"
    assert decision.candidate_ids == ()
    assert decision.match_probability is not None and decision.match_probability > 0.9999


def test_strong_demographics_without_card_data_are_an_auto_match() -> None:
    request = rec(member_id=None, subscriber_id=None, ssn=None)
    decision = run(request, ("p1", rec()))
    assert decision.outcome is MatchOutcome.MATCH
    assert decision.evidence.reason is DecisionReason.AUTO_MATCH


def test_no_candidates_and_weak_candidates_are_nomatch() -> None:
    assert run(rec()).evidence.reason is DecisionReason.NO_CANDIDATES
    stranger = rec(
        given=["Luis"],
        family="Perez",
        birth_date="1961-09-09",
        member_id="Q",
        subscriber_id="Q",
        ssn=None,
        address_lines=["1 Elm Rd"],
        postal_code="10001",
        phone="3125550000",
    )
    decision = run(rec(), ("p9", stranger))
    assert decision.outcome is MatchOutcome.NO_MATCH
    assert decision.evidence.reason is DecisionReason.BELOW_REVIEW_BAND
    assert decision.evidence.candidates_considered == 1


def test_two_people_who_both_fit_are_multiple_never_a_pick() -> None:
    """The same person enrolled twice under two member ids: HRex says multiple."""
    request = rec(member_id=None, subscriber_id=None, ssn=None)
    decision = run(request, ("p1", rec()), ("p2", rec(member_id="M-5678")))
    assert decision.outcome is MatchOutcome.MULTIPLE
    assert decision.member_id is None
    assert set(decision.candidate_ids) == {"p1", "p2"}
    assert decision.evidence.reason is DecisionReason.SEVERAL_CANDIDATES_FIT


def test_middling_evidence_is_reviewed() -> None:
    """A birth-date typo, no card data and another street (the home would tie the request to
    the household as a card does): likely, not certain."""
    slipped = {
        "member_id": None,
        "subscriber_id": None,
        "ssn": None,
        "birth_date": "1980-02-08",
        "address_lines": ["9 Elm Rd"],
    }
    decision = run(rec(**slipped), ("p1", rec()), policy=BULK)
    assert decision.outcome is MatchOutcome.REVIEW
    assert decision.candidate_ids == ("p1",) and decision.member_id is None
    assert decision.evidence.reason is DecisionReason.BELOW_AUTO_BAND
    assert decision.evidence.review_reason == "below_auto_band"
    moved = rec(**slipped, postal_code="10001", phone="3125559999")
    assert run(moved, ("p1", rec()), policy=BULK).outcome is MatchOutcome.NO_MATCH


def test_a_close_runner_up_sends_an_auto_match_to_review() -> None:
    cautious = MatchPolicy("cautious", 0.9999, 0.5, min_margin_weight=60.0)
    decision = run(
        rec(),
        ("p1", rec()),
        ("twin", rec(given=["Olivia"], member_id="M-77", ssn="234-56-7891")),
        policy=cautious,
    )
    assert decision.outcome is MatchOutcome.REVIEW
    assert decision.evidence.reason is DecisionReason.MARGIN_TOO_SMALL


def test_strong_candidate_with_a_guard_violation_is_reviewed_not_matched() -> None:
    """A real member whose first name the request garbled, and only the household's card
    (Ana is the subscriber) to go on: a reviewer decides."""
    decision = run(rec(given=["Xochitl"], ssn="123-45-6781"), ("p1", rec()))
    assert decision.outcome is MatchOutcome.REVIEW
    assert decision.evidence.reason is DecisionReason.GUARD_VIOLATION
    candidate = decision.evidence.candidates[0]
    assert candidate.guard_violations == ("given_name_conflict", "household_evidence_only")
    household = ("member_id", "subscriber_id", "family_name", "street_address", "postal_code")
    assert candidate.household_evidence == (*household, "phone")
    reason = "given_name_conflict, household_evidence_only"
    assert decision.evidence.review_reason == reason
    assert decision.evidence.to_dict()["review_reason"] == reason


def test_weak_candidate_with_a_conflict_is_nomatch() -> None:
    request = rec(given=["Xochitl"], member_id=None, ssn=None, subscriber_id=None)
    decision = run(request, ("p1", rec()), policy=SINGLE_EXCHANGE)
    assert decision.outcome is MatchOutcome.NO_MATCH
    assert decision.evidence.reason is DecisionReason.GUARD_VIOLATION


def test_typo_in_first_name_without_card_data_is_reviewed() -> None:
    request = rec(given=["Anna"], member_id=None, ssn=None, subscriber_id=None)
    decision = run(request, ("p1", rec()))
    assert decision.outcome is MatchOutcome.REVIEW
    assert decision.evidence.candidates[0].guard_violations == ("given_name_unconfirmed",)
    # The household's card and SSN do not confirm it (a twin named Anna shows both); a
    # middle name in full does.
    with_ssn = run(rec(given=["Anna"]), ("p1", rec()))
    assert with_ssn.outcome is MatchOutcome.REVIEW
    assert with_ssn.evidence.candidates[0].household_evidence[0] == "ssn"
    confirmed = run(rec(given=["Anna", "Lucia"]), ("p1", rec(given=["Ana", "Lucia"])))
    assert (confirmed.outcome, confirmed.member_id) == (MatchOutcome.MATCH, "p1")


def test_decision_is_deterministic_and_candidates_counted_once() -> None:
    others = [
        (f"o{i}", rec(given=[name], birth_date=f"19{60 + i}-01-01", member_id=f"Z{i}"))
        for i, name in enumerate(["Luis", "Mia", "Tom", "Eve"])
    ]
    forward = run(rec(), ("p1", rec()), *others, ("p1", rec()))
    backward = run(rec(), *reversed(others), ("p1", rec()))
    assert forward.evidence == backward.evidence
    assert forward.evidence.candidates_considered == 5


def test_evidence_is_json_and_free_of_demographics_and_identifiers() -> None:
    request = rec(given=["Ana", "Lucia"])
    decision = run(
        request, ("p1", rec()), ("p2", rec(given=["Olivia"], member_id="M-77", ssn=None))
    )
    document = decision.evidence.to_dict()
    text = json.dumps(document)
    for value in (
        "ana",
        "lucia",
        "garcia",
        "olivia",
        "1980",
        "19800203",
        "oak",
        "62701",
        "2175550101",
        "555",
        "m1234",
        "m-1234",
        "m77",
        "123456780",
        "6780",
    ):
        assert value not in text.lower(), value
    assert document["decision"] == "dec-1" and document["member"] == "p1"
    assert document["model_version"] == MODEL.version
    assert document["policy_version"] == SINGLE_EXCHANGE.version
    assert document["decided_at"] == "2026-03-01T12:00:00+00:00"
    assert {c["member"] for c in document["candidates"]} == {"p1", "p2"}  # type: ignore[union-attr]
    first = document["candidates"][0]  # type: ignore[index]
    assert {"comparison": "given_name", "level": "exact"}.items() <= first["comparisons"][0].items()


def test_stored_evidence_reads_back_as_the_evidence_itself_and_says_no_more() -> None:
    decision = run(
        rec(given=["Ana", "Lucia"]),
        ("p1", rec()),
        ("p2", rec(given=["Olivia"], member_id="M-77", ssn=None)),
    )
    stored = orjson.dumps(decision.evidence.to_stored())
    shown = decision.evidence.to_dict()
    assert json.dumps(evidence_from_stored(orjson.loads(stored))) == json.dumps(shown)  # in order
    assert len(stored) < 0.6 * len(orjson.dumps(shown))
    assert b"lucia" not in stored.lower() and b"m-77" not in stored.lower()


def test_evidence_stored_whole_before_the_stored_form_reads_as_it_was() -> None:
    shown = run(rec(), ("p1", rec())).evidence.to_dict()
    assert evidence_from_stored(orjson.loads(orjson.dumps(shown))) == shown


def test_evidence_keeps_the_strongest_candidates() -> None:
    narrow = replace_policy(SINGLE_EXCHANGE, evidence_candidates=2)
    others = [
        (f"o{i}", rec(given=["Luis"], birth_date=f"19{60 + i}-01-01", member_id=f"Z{i}"))
        for i in range(6)
    ]
    decision = run(rec(), ("p1", rec()), *others, policy=narrow)
    assert len(decision.evidence.candidates) == 2
    assert decision.evidence.candidates[0].member_id == "p1"
    assert decision.evidence.candidates_considered == 7


def replace_policy(policy: MatchPolicy, **changes: Any) -> MatchPolicy:
    fields = {
        "name": policy.name,
        "auto_match_probability": policy.auto_match_probability,
        "review_probability": policy.review_probability,
        "min_margin_weight": policy.min_margin_weight,
        "evidence_candidates": policy.evidence_candidates,
        **changes,
    }
    return MatchPolicy(**fields)


def test_policies_are_validated_and_versioned() -> None:
    assert SINGLE_EXCHANGE.version.startswith("single_exchange-")
    assert BULK.auto_match_probability > SINGLE_EXCHANGE.auto_match_probability
    assert BULK.review_probability > SINGLE_EXCHANGE.review_probability
    assert replace_policy(BULK, min_margin_weight=11.0).version != BULK.version
    assert replace_policy(BULK).version == BULK.version
    for bad in (
        {"review_probability": 0.0},
        {"review_probability": 0.999999},
        {"auto_match_probability": 1.0},
        {"min_margin_weight": -1.0},
        {"evidence_candidates": 0},
    ):
        with pytest.raises(InvalidInput):
            replace_policy(BULK, **bad)


def test_decision_time_must_be_timezone_aware() -> None:
    with pytest.raises(InvalidInput):
        decide(rec(), [], Matcher(MODEL, BULK), datetime(2026, 1, 1), DecisionId("d"))


def test_decision_with_another_model_records_its_version() -> None:
    other = replace(MODEL.spec)  # same spec, new object: the rule book is shared by fingerprint
    assert other.fingerprint == MODEL.spec.fingerprint
    model = default_model(other, probability_two_random_records_match=1e-4)
    decision = decide(rec(), [(MemberId("p1"), rec())], Matcher(model, BULK), AT, DecisionId("d"))
    assert decision.evidence.model_version == model.version != MODEL.version
