"""Ordinary life, one variation at a time: the member is found, and the family trap beside
each variation (a relative who never enrolled, showing what a relative can show) is not.

The model is the prior for a million members with term frequencies of such a plan:
John, Mary and Smith are common; the Okonkwos' names are rare.
"""

from __future__ import annotations

from typing import Any

import pytest

from payerbridge.identity.matching.decision import BULK, SINGLE_EXCHANGE, MatchPolicy
from payerbridge.identity.matching.frequencies import TermFrequencies
from payerbridge.identity.matching.model import MatchDecision, MatchOutcome
from payerbridge.identity.matching.scoring import default_model
from payerbridge.identity.matching.spec import DEFAULT_SPEC
from tests.unit.identity.test_family_traps import (
    HEAD_SSN,
    assert_never_wrong,
    decide_among,
    household,
    request_for,
    without,
)

MODEL = default_model().with_population(
    {
        "given_name": TermFrequencies(
            1_000_000,
            {"john": 30_000, "mary": 20_000, "emma": 8_000, "olivia": 8_000}
            | {"mia": 6_000, "mila": 2_000},
        ),
        "family_name": TermFrequencies(1_000_000, {"smith": 10_000, "garcia": 8_000}),
    }
)
POLICIES = [SINGLE_EXCHANGE, BULK]


def decide(request: dict[str, Any], people: dict[str, dict[str, Any]], policy: MatchPolicy) -> Any:
    return decide_among(request, people, MODEL, policy)


def assert_found(decision: MatchDecision, member: str) -> None:
    assert (decision.outcome, decision.member_id) == (MatchOutcome.MATCH, member), (
        decision.evidence.to_dict()
    )


def okonkwos() -> dict[str, dict[str, Any]]:
    """A mother and her twin daughters; one twin never enrolled (the trap)."""
    home = {
        "family": "Okonkwo",
        "address_lines": ["48 Juniper Lane"],
        "postal_code": "30310",
        "phone": "404-555-0199",
        "subscriber_id": "K500",
    }
    return {
        "mother": {
            **home,
            "given": ["Ngozi"],
            "birth_date": "1979-11-02",
            "sex": "female",
            "member_id": "K500",
        },
        "adaeze": {
            **home,
            "given": ["Adaeze"],
            "birth_date": "2004-03-14",
            "sex": "female",
            "member_id": "K501",
        },
    }


MOVED = {"address_lines": ["9 Harbor View Rd"], "postal_code": "98101", "phone": "206-555-0142"}


@pytest.mark.parametrize("policy", POLICIES)
def test_a_member_who_moved_is_found_by_a_rare_name_without_card_data(
    policy: MatchPolicy,
) -> None:
    people = okonkwos()
    request = {**request_for(people["adaeze"], "no_card"), **MOVED}
    assert_found(decide(request, people, policy), "adaeze")
    # Her twin who never enrolled moved with her: same surname, birth date and new home.
    twin = {**request, "given": ["Chiamaka"]}
    assert_never_wrong(decide(twin, people, policy), "chiamaka", people)


def test_a_common_name_that_moved_is_not_auto_matched() -> None:
    """John Smith, born 1955-04-10, new address, no card: in a million members that name
    and birth date are shared often enough that a person looks."""
    people = household()
    request = {**request_for(people["head"], "no_card"), **MOVED}
    request.pop("suffixes")
    decision = decide(request, people, SINGLE_EXCHANGE)
    assert decision.outcome is MatchOutcome.REVIEW and decision.candidate_ids == ("head",)
    assert decide(request, people, BULK).member_id is None


@pytest.mark.parametrize("twin", ["Olivia", "Mia"])
def test_a_member_who_moved_within_the_area_keeps_the_area_code_in_evidence(twin: str) -> None:
    """Mila Smith moved across town: new street, ZIP and number, the same area code. That
    is evidence a move across the country does not give; her twin who never enrolled moved
    with her and is never taken for her, however alike their names."""
    people = household()
    people["twin_a"] = {**people["twin_a"], "given": ["Mila"]}
    moved = {"address_lines": ["9 Harbor View Rd"], "postal_code": "98101"}
    local = {**request_for(people["twin_a"], "no_card"), **moved, "phone": "217-555-0777"}
    far = {**local, "phone": "206-555-0142"}
    found = decide(local, people, SINGLE_EXCHANGE)
    assert_found(found, "twin_a")
    assert found.evidence.candidates[0].levels[DEFAULT_SPEC.index("phone")] == "same_area_code"
    assert decide(far, people, SINGLE_EXCHANGE).outcome is MatchOutcome.REVIEW
    others = without(people, "twin_b")
    trap = {**local, "given": [twin]}
    for policy in POLICIES:
        assert_never_wrong(decide(trap, others, policy), "twin_b", others)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("birth_date", ["2012-06-01", "2012-01-01"])
def test_a_birth_day_recorded_as_01_with_the_own_card(policy: MatchPolicy, birth_date: str) -> None:
    people = household()
    request = {**request_for(people["twin_a"], "own_member_id"), "birth_date": birth_date}
    assert_found(decide(request, people, policy), "twin_a")
    # Her twin, never enrolled, with the household's card and the same slip.
    others = without(people, "twin_b")
    twin = {**request_for(people["twin_b"], "subscribers_card"), "birth_date": birth_date}
    assert_never_wrong(decide(twin, others, policy), "twin_b", others)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_one_letter_insertion_in_the_first_name_with_the_own_card(policy: MatchPolicy) -> None:
    people = household()
    request = {**request_for(people["twin_a"], "own_member_id"), "given": ["Emmma"]}
    assert_found(decide(request, people, policy), "twin_a")
    # Mila never enrolled: one letter from Mia, same birth date, the household's card.
    people = household(("Mia", "Mila"))
    others = without(people, "twin_b")
    for card in ("subscribers_card", "subscriber_id_only", "no_card"):
        twin = request_for(people["twin_b"], card)
        assert_never_wrong(decide(twin, others, policy), "twin_b", others)


@pytest.mark.parametrize("policy", POLICIES)
def test_given_and_family_name_swapped_with_the_own_ssn(policy: MatchPolicy) -> None:
    people = household()
    request = {
        **request_for(people["spouse"], "no_card"),
        "given": ["Smith"],
        "family": "Mary",
        "ssn": people["spouse"]["ssn"],
    }
    assert_found(decide(request, people, policy), "spouse")
    others = without(people, "twin_b")
    twin = {**request_for(people["twin_b"], "subscribers_card"), "given": ["Smith"]}
    twin["family"] = people["twin_b"]["given"][0]
    assert_never_wrong(decide(twin, others, policy), "twin_b", others)


@pytest.mark.parametrize("policy", POLICIES)
def test_the_own_card_outvotes_a_first_name_entered_wrong(policy: MatchPolicy) -> None:
    """The member's own card number, birth date and surname: the first name was replaced
    (FEBRL's corruption). A twin never holds the member's own number; with the household's
    card she is never matched."""
    people = household()
    request = {**request_for(people["twin_a"], "own_member_id"), "given": ["Harper"]}
    assert_found(decide(request, people, policy), "twin_a")
    others = without(people, "twin_b")
    for card in ("subscribers_card", "subscriber_id_only"):
        twin = request_for(people["twin_b"], card)
        assert_never_wrong(decide(twin, others, policy), "twin_b", others)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "surname", [{"family": "Johnson"}, {"family": "Smith-Johnson"}, {"family": "Johnson"}]
)
def test_married_and_hyphenated_surnames_with_the_household_card(
    policy: MatchPolicy, surname: dict[str, str]
) -> None:
    people = household()
    request = {**request_for(people["spouse"], "subscriber_id_only"), **surname}
    assert_found(decide(request, people, policy), "spouse")
    # A sister-in-law who never enrolled: another first name, the same card and surname.
    sister = {**request, "given": ["Margaret"], "birth_date": "1957-08-22"}
    assert_never_wrong(decide(sister, people, policy), "sister", people)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    ("recorded", "asked"),
    [
        (["José"], ["Jose"]),  # accents dropped
        (["María José"], ["Maria", "Jose"]),  # a compound name over two fields
        (["Nguyễn Thị Lan"], ["Nguyen Thi Lan"]),
    ],
)
def test_names_from_many_cultures(
    policy: MatchPolicy, recorded: list[str], asked: list[str]
) -> None:
    people = household()
    people["twin_a"]["given"] = recorded
    request = {**request_for(people["twin_a"], "own_member_id"), "given": asked}
    assert_found(decide(request, people, policy), "twin_a")


@pytest.mark.parametrize("policy", POLICIES)
def test_sisters_with_one_compound_first_name_are_told_apart(policy: MatchPolicy) -> None:
    """María José and María Fernanda: one first name to a form with one field."""
    people = household(("María José", "María Fernanda"))
    others = without(people, "twin_b")
    for card in ("subscribers_card", "subscriber_id_only", "no_card"):
        twin = request_for(people["twin_b"], card)
        assert_never_wrong(decide(twin, others, policy), "twin_b", others)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_name_variant_from_the_nicknames_dataset_needs_an_identifier(
    policy: MatchPolicy,
) -> None:
    """Alice and Lisa are one name to the nicknames dataset, and two sisters' names too."""
    people = household(("Alice", "Lisa"))
    request = {**request_for(people["twin_a"], "own_member_id"), "given": ["Lisa"]}
    request["member_id"] = people["twin_a"]["member_id"]
    assert_found(decide(request, without(people, "twin_b"), policy), "twin_a")
    others = without(people, "twin_b")
    for card in ("subscribers_card", "subscriber_id_only", "no_card"):
        twin = request_for(people["twin_b"], card)
        assert_never_wrong(decide(twin, others, policy), "twin_b", others)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("birth_date", ["1982-04-11", "1982-10-04", "1983-04-10"])
def test_a_birth_date_slip_with_the_full_name_and_the_household_card(
    policy: MatchPolicy, birth_date: str
) -> None:
    people = household()
    request = {**request_for(people["junior"], "subscriber_id_only"), "birth_date": birth_date}
    decision = decide(request, people, policy)
    if birth_date == "1983-04-10":  # a year off is no typo the household rule accepts
        assert decision.member_id in (None, "junior")
    else:
        assert_found(decision, "junior")
    assert_namesake_father_is_not_his_son(people, "subscriber_id_only", policy)


def assert_namesake_father_is_not_his_son(
    people: dict[str, dict[str, Any]], card: str, policy: MatchPolicy
) -> None:
    """John Sr never enrolled, and his birth date has a slip too: a generation from his
    son's, so never John Jr."""
    father = {**request_for(household()["head"], card), "birth_date": "1952-04-10"}
    father.pop("suffixes")
    others = without(people, "head")
    assert_never_wrong(decide(father, others, policy), "father", others)


def test_the_own_ssn_is_not_a_carried_one() -> None:
    """The son's record holds his father's SSN as carried: the father showing it is
    household evidence, not the son's identifier."""
    people = household()
    father = {**request_for(people["head"], "no_card"), "ssn": HEAD_SSN}
    others = without(people, "head")
    assert_never_wrong(decide(father, others, BULK), "head", others)


def test_among_unrelated_people_the_weight_decides_where_relatives_would_be_guarded() -> None:
    """A registry where no two members share a household (FEBRL4): a first name a typo
    away with nothing to confirm it is a typo, not a twin. In a plan of families, where
    the typo is a name members hold (Mila for Mia), it stays a reviewer's call."""
    people = household(("Mia", "Olivia"))
    request = {**request_for(people["twin_a"], "no_card"), "given": ["Mila"]}
    families = decide_among(request, people, MODEL, SINGLE_EXCHANGE)
    assert families.member_id is None
    assert families.evidence.review_reason == "given_name_unconfirmed"
    unrelated = MODEL.with_population(dict(MODEL.term_frequencies), 1e-12)
    assert unrelated.relatives_unlikely and not MODEL.relatives_unlikely
    alone = {"twin_a": people["twin_a"]}
    assert decide_among(request, alone, MODEL, SINGLE_EXCHANGE).member_id is None
    assert_found(decide_among(request, alone, unrelated, SINGLE_EXCHANGE), "twin_a")


def given_name_level(decision: MatchDecision) -> str:
    evidence = decision.evidence.to_dict()
    comparisons = evidence["candidates"][0]["comparisons"]  # type: ignore[index]
    return next(c["level"] for c in comparisons if c["comparison"] == "given_name")


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("name", "typo"), [("Emma", "Emmma"), ("Olivia", "Olvia")])
def test_a_first_name_no_member_holds_is_a_misspelling_of_the_one_thousands_hold(
    policy: MatchPolicy, name: str, typo: str
) -> None:
    """No card, and a first name none of a million members holds, a typo from one that
    thousands hold: the member misspelled, not a twin (a twin's name is a name)."""
    people = household(("Emma", "Olivia"))
    twin = "twin_a" if name == "Emma" else "twin_b"
    decision = decide({**request_for(people[twin], "no_card"), "given": [typo]}, people, policy)
    assert_found(decision, twin)
    assert given_name_level(decision) == "misspelling"
    # Mila never enrolled: one letter from her twin Mia's name, and a name members hold.
    people = household(("Mia", "Mila"))
    others = without(people, "twin_b")
    trap = decide(request_for(people["twin_b"], "no_card"), others, policy)
    assert_never_wrong(trap, "twin_b", others)
    assert given_name_level(trap) == "jaro_winkler"


def test_a_plan_too_small_to_tell_a_misspelling_from_a_rare_name_asks_a_person() -> None:
    """In 20,000 members a name held by none may be a twin's rare name: the typo stays a
    reviewer's call."""
    small = default_model(probability_two_random_records_match=1 / 20_000).with_population(
        {"given_name": TermFrequencies(20_000, {"emma": 160, "olivia": 160})}
    )
    people = household()
    request = {**request_for(people["twin_a"], "no_card"), "given": ["Emmma"]}
    decision = decide_among(request, people, small, SINGLE_EXCHANGE)
    assert decision.member_id is None
    assert decision.evidence.review_reason == "given_name_unconfirmed"


@pytest.mark.parametrize("policy", POLICIES)
def test_a_nickname_that_members_hold_as_their_own_name_needs_an_identifier(
    policy: MatchPolicy,
) -> None:
    """Katie is Kathryn's nickname, and in a plan where many members are named Katie it is
    also a name parents give: a twin sister Katie who never enrolled looks like Kathryn
    going by her nickname. Where members are not named Katie, the nickname stands."""
    people = household(("Kathryn", "Katie"))
    others = without(people, "twin_b")
    twin = request_for(people["twin_b"], "subscribers_card")
    plain = MODEL  # no member named Katie or Kathryn: the nickname auto-matches
    own_name = MODEL.with_population(
        {
            **MODEL.term_frequencies,
            "given_name": TermFrequencies(
                1_000_000,
                {**MODEL.term_frequencies["given_name"].counts, "katie": 900, "kathryn": 700},
            ),
        }
    )
    assert decide_among(twin, others, plain, policy).member_id == "twin_a"  # the risk, named
    assert_never_wrong(decide_among(twin, others, own_name, policy), "twin_b", others)
    assert decide_among(twin, others, own_name, policy).evidence.review_reason == (
        "given_name_unconfirmed"
    )
    # Kathryn herself, going by Katie with her own card number, is still found.
    herself = {**twin, "member_id": people["twin_a"]["member_id"]}
    assert_found(decide_among(herself, others, own_name, policy), "twin_a")


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("given", [["E", "Rose"], ["Emmy", "Rose"]])
def test_a_middle_name_in_full_confirms_a_first_name_given_only_in_part(
    policy: MatchPolicy, given: list[str]
) -> None:
    """Only the initial, or a variant, without a card: the middle name, agreeing in full,
    tells Emma Rose from a twin named alike, Eva Claire, who never enrolled."""
    people = household(("Emma", "Eva"))
    people["twin_a"]["given"] = ["Emma", "Rose"]
    people["twin_b"]["given"] = ["Eva", "Claire"]
    others = without(people, "twin_b")
    request = {**request_for(people["twin_a"], "no_card"), "given": given}
    assert_found(decide(request, others, policy), "twin_a")
    twin = {**request_for(people["twin_b"], "no_card"), "given": ["E", "Claire"]}
    assert_never_wrong(decide(twin, others, policy), "twin_b", others)
    # Without the middle name the initial could be either twin's.
    bare = {**request, "given": given[:1]}
    assert decide(bare, others, policy).member_id is None


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("card", ["subscriber_id_only", "no_card"])
def test_one_middle_name_in_common_does_not_confirm_a_twin_with_a_compound_name(
    policy: MatchPolicy, card: str
) -> None:
    """Twins Juan Pablo Ricardo (enrolled) and Juan José Pablo (never enrolled): the first
    word and one middle name in common, and each a name the other lacks."""
    people = household(("Juan Pablo", "Juan José"))
    people["twin_a"].update(given=["Juan Pablo", "Ricardo"], sex="male")
    people["twin_b"].update(given=["Juan José", "Pablo"], sex="male")
    others = without(people, "twin_b")
    decision = decide(request_for(people["twin_b"], card), others, policy)
    assert_never_wrong(decision, "twin_b", others)
    # Juan Pablo himself, his compound name split over first and middle name, is found.
    request = {**request_for(people["twin_a"], card), "given": ["Juan", "Pablo"]}
    assert_found(decide(request, others, policy), "twin_a")


@pytest.mark.parametrize("policy", POLICIES)
def test_a_surname_with_its_first_letter_mistyped_is_found_after_a_move(
    policy: MatchPolicy,
) -> None:
    """Qkonkwo for Okonkwo, new address, no card: a typo Jaro-Winkler scores low, with a
    rare first name and the birth date (enough for a single exchange; a bulk file's odds
    need more)."""
    people = okonkwos()
    request = {**request_for(people["adaeze"], "no_card"), **MOVED, "family": "Qkonkwo"}
    decision = decide(request, people, policy)
    if policy is SINGLE_EXCHANGE:
        assert_found(decision, "adaeze")
    else:
        assert decision.candidate_ids == ("adaeze",)
    # Her twin who never enrolled, with the same slip.
    twin = {**request, "given": ["Chiamaka"]}
    assert_never_wrong(decide(twin, people, policy), "chiamaka", people)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("card", ["subscribers_card", "subscriber_id_only"])
def test_given_names_run_together_with_the_household_card(policy: MatchPolicy, card: str) -> None:
    """Mei Ling, asked about as "Meiling", is found; her twin Mei Hua, who never enrolled,
    asked about as "Meihua", is not taken for her."""
    people = household(("Mei Ling", "Mei Hua"))
    people["twin_a"]["given"] = ["Mei", "Ling"]
    others = without(people, "twin_b")
    request = {**request_for(people["twin_a"], card), "given": ["Meiling"]}
    assert_found(decide(request, others, policy), "twin_a")
    twin = {**request_for(people["twin_b"], card), "given": ["Meihua"]}
    assert_never_wrong(decide(twin, others, policy), "twin_b", others)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("birth_date", ["1982-04-11", "1982-10-04", "1982-04-01"])
def test_a_birth_date_slip_with_the_full_name_at_the_members_home_without_a_card(
    policy: MatchPolicy, birth_date: str
) -> None:
    """The address ties the request to the household as the card would: John Jr with a
    typo, a day/month swap or the day recorded as 01 is found; his namesake father, who
    never enrolled, is a generation apart, and after a move the slip is not enough."""
    people = household()
    request = {**request_for(people["junior"], "no_card"), "birth_date": birth_date}
    assert_found(decide(request, people, policy), "junior")
    moved = {**request, **MOVED}
    assert decide(moved, people, policy).member_id is None
    assert_namesake_father_is_not_his_son(people, "no_card", policy)
