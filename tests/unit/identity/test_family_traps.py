"""Family traps: relatives share a household's data and must never be matched for each other.

Each trap runs with both policies, with a prior for a million members and a
generous one for a thousand, and with the card data a request may carry. When
the true member is among the candidates the decision may be that member (or
review); when they are not, it must be nomatch, review or multiple: never a
relative.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from payerbridge.identity.demographics.standardize import Demographics, standard_record
from payerbridge.identity.matching.decision import (
    BULK,
    SINGLE_EXCHANGE,
    Matcher,
    MatchPolicy,
    decide,
)
from payerbridge.identity.matching.model import DecisionId, MatchDecision, MatchOutcome
from payerbridge.identity.matching.scoring import MatchModel, default_model
from payerbridge.types import MemberId

AT = datetime(2026, 3, 1, tzinfo=UTC)
HOME = {
    "family": "Smith",
    "address_lines": ["12 Oak Street", "Apt 3"],
    "postal_code": "62701",
    "phone": "217-555-0101",
    "subscriber_id": "M100",
}
HEAD_SSN = "123-45-6780"


def household(twins: tuple[str, str] = ("Emma", "Olivia")) -> dict[str, dict[str, Any]]:
    """A subscriber (John Sr), spouse, twin daughters, John Jr and a son carrying Sr's SSN."""
    return {
        "head": {
            **HOME,
            "given": ["John"],
            "suffixes": ["Sr"],
            "birth_date": "1955-04-10",
            "sex": "male",
            "member_id": "M100",
            "ssn": HEAD_SSN,
        },
        "spouse": {
            **HOME,
            "given": ["Mary"],
            "birth_date": "1957-08-22",
            "sex": "female",
            "member_id": "M101",
            "ssn": "234-56-7890",
        },
        "twin_a": {
            **HOME,
            "given": [twins[0]],
            "birth_date": "2012-06-15",
            "sex": "female",
            "member_id": "M102",
        },
        "twin_b": {
            **HOME,
            "given": [twins[1]],
            "birth_date": "2012-06-15",
            "sex": "female",
            "member_id": "M103",
        },
        "junior": {
            **HOME,
            "given": ["John"],
            "suffixes": ["Jr"],
            "birth_date": "1982-04-10",
            "sex": "male",
            "member_id": "M104",
        },
        "son": {
            **HOME,
            "given": ["Liam"],
            "birth_date": "2015-09-01",
            "sex": "male",
            "member_id": "M105",
            "ssn": HEAD_SSN,
            "ssn_carried": True,
        },
    }


MODELS = [default_model(), default_model(probability_two_random_records_match=1e-3)]
POLICIES = [SINGLE_EXCHANGE, BULK]
CARDS = ["own_member_id", "subscribers_card", "subscriber_id_only", "no_card"]


def request_for(person: dict[str, Any], card: str) -> dict[str, Any]:
    """What a new payer sends about ``person``: demographics plus whatever the card shows."""
    request = {k: v for k, v in person.items() if k not in ("ssn", "ssn_carried")}
    if card == "subscribers_card":
        request["member_id"] = HOME["subscriber_id"]
    elif card == "subscriber_id_only":
        request.pop("member_id")
    elif card == "no_card":
        request.pop("member_id")
        request.pop("subscriber_id")
    return request


def decide_among(
    request: dict[str, Any],
    people: dict[str, dict[str, Any]],
    model: MatchModel,
    policy: MatchPolicy,
) -> MatchDecision:
    candidates = [
        (MemberId(name), standard_record(Demographics(**fields))) for name, fields in people.items()
    ]
    return decide(
        standard_record(Demographics(**request)),
        candidates,
        Matcher(model, policy),
        AT,
        DecisionId("d"),
    )


def assert_never_wrong(decision: MatchDecision, truth: str, people: dict[str, Any]) -> None:
    if truth in people:
        assert decision.member_id in (None, truth), decision.evidence.to_dict()
    else:
        assert decision.outcome in (
            MatchOutcome.NO_MATCH,
            MatchOutcome.REVIEW,
            MatchOutcome.MULTIPLE,
        ), decision.evidence.to_dict()
        assert decision.member_id is None


def without(people: dict[str, dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in people.items() if k != name}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("card", CARDS)
@pytest.mark.parametrize("twins", [("Emma", "Olivia"), ("Emma", "Eva"), ("Mia", "Mila")])
def test_twins_are_never_matched_to_each_other(
    model: MatchModel, policy: MatchPolicy, card: str, twins: tuple[str, str]
) -> None:
    people = household(twins)
    for twin, other in (("twin_a", "twin_b"), ("twin_b", "twin_a")):
        request = request_for(people[twin], card)
        absent = decide_among(request, without(people, twin), model, policy)
        assert_never_wrong(absent, twin, without(people, twin))
        present = decide_among(request, people, model, policy)
        assert_never_wrong(present, twin, people)
        assert present.member_id != other


def test_twins_with_an_exact_name_and_own_card_are_told_apart() -> None:
    people = household()
    decision = decide_among(request_for(people["twin_a"], "own_member_id"), people, MODELS[0], BULK)
    assert (decision.outcome, decision.member_id) == (MatchOutcome.MATCH, "twin_a")


def test_twins_given_by_initial_only_are_multiple_or_review() -> None:
    people = household(("Emma", "Eva"))
    request = {**request_for(people["twin_a"], "no_card"), "given": ["E."]}
    for model in MODELS:
        decision = decide_among(request, people, model, SINGLE_EXCHANGE)
        assert decision.outcome in (MatchOutcome.MULTIPLE, MatchOutcome.REVIEW)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("card", CARDS)
@pytest.mark.parametrize("with_suffix", [True, False])
def test_junior_and_senior(
    model: MatchModel, policy: MatchPolicy, card: str, with_suffix: bool
) -> None:
    people = household()
    for person, relative in (("junior", "head"), ("head", "junior")):
        request = request_for(people[person], card)
        if not with_suffix:
            request.pop("suffixes")
        for candidates in (without(people, person), people):
            decision = decide_among(request, candidates, model, policy)
            assert_never_wrong(decision, person, candidates)
            assert decision.member_id != relative


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("policy", POLICIES)
def test_dependent_using_subscriber_member_id(model: MatchModel, policy: MatchPolicy) -> None:
    """The son's card shows his father's number, which is the father's own member id."""
    people = household()
    request = request_for(people["son"], "subscribers_card")
    assert request["member_id"] == people["head"]["member_id"]
    absent = decide_among(request, without(people, "son"), model, policy)
    assert_never_wrong(absent, "son", without(people, "son"))
    present = decide_among(request, people, model, policy)
    assert_never_wrong(present, "son", people)
    assert present.member_id != "head"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("policy", POLICIES)
def test_carried_ssn(model: MatchModel, policy: MatchPolicy) -> None:
    """The son's record holds his father's SSN; an SSN alone must not pick either of them."""
    people = household()
    for person in ("head", "son"):
        request = {**request_for(people[person], "no_card"), "ssn": HEAD_SSN}
        for candidates in (without(people, person), people):
            decision = decide_among(request, candidates, model, policy)
            assert_never_wrong(decision, person, candidates)
    # The father with his own SSN and nothing else from the card is still found.
    father = {**request_for(people["head"], "no_card"), "ssn": HEAD_SSN}
    assert decide_among(father, people, model, policy).member_id in (None, "head")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("person", ["son", "head", "twin_a", "spouse"])
def test_parent_and_child_share_subscriber_id(
    model: MatchModel, policy: MatchPolicy, person: str
) -> None:
    people = household()
    request = request_for(people[person], "subscriber_id_only")
    absent = decide_among(request, without(people, person), model, policy)
    assert_never_wrong(absent, person, without(people, person))
    present = decide_among(request, people, model, policy)
    assert_never_wrong(present, person, people)


def test_household_members_are_found_when_present() -> None:
    """Guards must not make the household unmatchable: each member's own card finds them."""
    people = household()
    for person in people:
        decision = decide_among(
            request_for(people[person], "own_member_id"), people, MODELS[0], BULK
        )
        assert (decision.outcome, decision.member_id) == (MatchOutcome.MATCH, person), person


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", ["Joan", "Johan", "Jahn"])
def test_subscribers_twin_who_never_enrolled_shows_the_family_card(
    model: MatchModel, policy: MatchPolicy, name: str
) -> None:
    """The subscriber's twin (same birth date, a name a letter or two away) shows the family's
    card, which is the subscriber's own member id: never the subscriber."""
    people = household()
    twin = {**request_for(people["head"], "own_member_id"), "given": [name]}
    twin.pop("suffixes")
    decision = decide_among(twin, people, model, policy)
    assert_never_wrong(decision, "twin-never-enrolled", people)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("policy", POLICIES)
def test_namesake_father_one_digit_from_his_sons_birth_date(
    model: MatchModel, policy: MatchPolicy
) -> None:
    """A father who never enrolled, named like his son, born 1955 against the son's 1995 (one
    digit apart), at the same address with the family's card: never the son."""
    people = household()
    son = {**people["junior"], "birth_date": "1995-08-08"}
    people["junior"] = son
    father = {**request_for(son, "subscribers_card"), "birth_date": "1955-08-08"}
    father.pop("suffixes")
    decision = decide_among(father, people, model, policy)
    assert_never_wrong(decision, "father-never-enrolled", people)


# -- Relaxations and the traps they could fall into ------------------------------------------
# Each rule added for recall names here the relatives it must still not take for the member:
# the household's card with a dependent's birth date, a surname the card does not confirm, a
# birth date one typo from a member's, a card number one edit from a dependent's.


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("twins", [("Emma", "Olivia"), ("Emma", "Eva"), ("Mia", "Mila")])
@pytest.mark.parametrize("family", ["Smith", "Jones"])
def test_dependents_twin_on_the_subscribers_card_is_never_the_dependent(
    model: MatchModel, policy: MatchPolicy, twins: tuple[str, str], family: str
) -> None:
    """household_card_birth_date_given_name: the card shows the subscriber's number and the
    birth date is the dependent's; the twin who never enrolled has their own first name (and
    maybe a married surname, which the rule does not ask for)."""
    people = household(twins)
    enrolled = without(people, "twin_b")
    request = {**request_for(people["twin_b"], "subscribers_card"), "family": family}
    decision = decide_among(request, enrolled, model, policy)
    assert_never_wrong(decision, "twin_b", enrolled)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("card", CARDS)
def test_subscribers_twin_under_another_surname_with_the_family_card_is_never_the_subscriber(
    model: MatchModel, policy: MatchPolicy, card: str
) -> None:
    """household_card_birth_date_given_name no longer asks for the surname. The subscriber's
    twin brother, who never enrolled and goes by another surname, shows the family's card:
    the card, the birth date and the sex agree, the first name does not."""
    people = household()
    brother = {**request_for(people["head"], card), "given": ["Peter"], "family": "Brown"}
    brother.pop("suffixes")
    decision = decide_among(brother, people, model, policy)
    assert_never_wrong(decision, "brother-never-enrolled", people)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("card", CARDS)
@pytest.mark.parametrize("father_birth", ["1952-04-10", "1952-10-04"])
def test_namesake_father_one_typo_from_his_sons_birth_date_is_never_the_son(
    model: MatchModel, policy: MatchPolicy, card: str, father_birth: str
) -> None:
    """household_full_name_birth_date_typo: John Sr never enrolled; John Jr (1982-04-10) is
    on the plan. 1952 is one digit from 1982 (and 10-04 is a day/month swap on top), but a
    generation apart: a birth-date conflict, not a typo."""
    people = without(household(), "head")
    father = {**request_for(household()["head"], card), "birth_date": father_birth}
    father.pop("suffixes")
    decision = decide_among(father, people, model, policy)
    assert_never_wrong(decision, "father-never-enrolled", people)


@pytest.mark.parametrize("card", ["own_member_id", "subscribers_card", "subscriber_id_only"])
def test_member_with_a_birth_date_typo_and_the_family_card_is_found(card: str) -> None:
    """What household_full_name_birth_date_typo is for: John Jr's full name and the family's
    card, his birth date one digit off."""
    people = household()
    junior = {**request_for(people["junior"], card), "birth_date": "1982-04-11"}
    decision = decide_among(junior, people, MODELS[0], BULK)
    assert (decision.outcome, decision.member_id) == (MatchOutcome.MATCH, "junior")
    # His own card number is a person's identifier and decides before the household's.
    expected = "member_id_given_name_birth_date_near" if card == "own_member_id" else None
    assert decision.evidence.rule == (expected or "household_full_name_birth_date_typo")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("card", CARDS)
@pytest.mark.parametrize("birth_date", ["2012-06-16", "2013-06-15", "2012-05-15"])
def test_twin_or_sibling_one_typo_from_a_members_birth_date_is_never_the_member(
    model: MatchModel, policy: MatchPolicy, card: str, birth_date: str
) -> None:
    """household_full_name_birth_date_typo: a twin (with a typo in the birth date) or a
    sibling born a year or a month from Emma, never enrolled, with the family card: the
    birth date is one typo away, the first name is not Emma's."""
    people = without(household(("Emma", "Eva")), "twin_b")
    relative = {**request_for(household(("Emma", "Eva"))["twin_b"], card), "birth_date": birth_date}
    decision = decide_among(relative, people, model, policy)
    assert_never_wrong(decision, "relative-never-enrolled", people)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("policy", POLICIES)
def test_son_carrying_his_fathers_ssn_who_never_enrolled_is_never_the_father(
    model: MatchModel, policy: MatchPolicy
) -> None:
    """household_card_birth_date_given_name: the son shows the family card and the SSN his
    record carries, which is his father's own. When the son is not on the plan, the father
    agrees on the SSN and the card: never the father."""
    people = household()
    son = {**request_for(people["son"], "subscribers_card"), "ssn": HEAD_SSN}
    absent = decide_among(son, without(people, "son"), model, policy)
    assert_never_wrong(absent, "son", without(people, "son"))
    present = decide_among(son, people, model, policy)
    assert present.member_id in (None, "son")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("person", ["twin_a", "junior", "son"])
def test_family_card_one_edit_from_a_dependents_card_is_household_evidence(
    model: MatchModel, policy: MatchPolicy, person: str
) -> None:
    """The household's card numbers are sequential (M100 to M105): the family card M100 is one
    edit from every dependent's own number. A relative who never enrolled, born the same day
    as a dependent, shows it with their own first name: never the dependent."""
    people = household()
    relative = {**request_for(people[person], "subscribers_card"), "given": ["Nathan"]}
    relative.pop("suffixes", None)
    decision = decide_among(relative, people, model, policy)
    assert_never_wrong(decision, "relative-never-enrolled", people)
    position = decision.evidence.comparisons.index("member_id")
    assert all(c.levels[position] != "one_typo" for c in decision.evidence.candidates)
