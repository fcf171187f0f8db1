"""Deterministic rules fire on card data; household guards block auto-acceptance."""

from __future__ import annotations

import pytest

from payerbridge.identity.matching.rules import DeterministicRule, RuleBook
from payerbridge.identity.matching.spec import DEFAULT_SPEC

BOOK = RuleBook()


def vector(**levels: str) -> tuple[int, ...]:
    """A comparison vector from level names; comparisons not named are null."""
    return tuple(c.level_index(levels.get(c.name, "null")) for c in DEFAULT_SPEC.comparisons)


PERSON = {"given_name": "exact", "birth_date": "exact", "family_name": "exact", "sex": "exact"}


@pytest.mark.parametrize(
    ("levels", "rule"),
    [
        ({**PERSON, "member_id": "exact"}, "member_id_birth_date_given_name"),
        (
            {**PERSON, "given_name": "one_edit", "member_id": "exact"},
            "member_id_birth_date_given_name",
        ),
        ({**PERSON, "member_id": "exact_subscriber_card"}, "subscriber_card_birth_date_given_name"),
        # The subscriber's twin shows the family's card: Nova is one letter from Nora.
        ({**PERSON, "given_name": "one_edit", "member_id": "exact_subscriber_card"}, None),
        ({**PERSON, "ssn": "exact"}, "ssn_birth_date_given_name"),
        ({**PERSON, "subscriber_id": "exact"}, "household_card_birth_date_given_name"),
        # The card's member id is another member's: the subscriber id alone does not decide.
        ({**PERSON, "subscriber_id": "exact", "member_id": "else"}, None),
        ({**PERSON, "ssn": "carried"}, None),  # a carried SSN identifies a household
        # A dependent's card showing the subscriber's number ties them to the household as
        # the subscriber id does; the first name and birth date pick them out of it.
        ({**PERSON, "member_id": "is_subscriber_id"}, "household_card_birth_date_given_name"),
        ({**PERSON, "member_id": "is_subscriber_id", "subscriber_id": "else"}, None),
        # The surname changes with marriage; the card does not.
        (
            {**PERSON, "family_name": "else", "subscriber_id": "exact"},
            "household_card_birth_date_given_name",
        ),
        ({**PERSON, "sex": "else", "subscriber_id": "exact"}, None),
        # The member's own card, birth date and surname: the first name may be anything.
        (
            {**PERSON, "given_name": "initial", "member_id": "exact"},
            "member_id_birth_date_family_name",
        ),
        ({**PERSON, "given_name": "initial", "member_id": "exact", "family_name": "else"}, None),
        (
            {**PERSON, "given_name": "initial", "sex": "else", "member_id": "exact"},
            None,
        ),
        (
            {**PERSON, "birth_date": "one_typo", "member_id": "exact"},
            "member_id_given_name_birth_date_near",
        ),
        (
            {**PERSON, "birth_date": "one_typo", "member_id": "exact_subscriber_card"},
            "household_full_name_birth_date_typo",
        ),
        (
            {**PERSON, "birth_date": "day_defaulted", "ssn": "exact"},
            "ssn_given_name_birth_date_near",
        ),
        (
            {**PERSON, "birth_date": "other_generation", "member_id": "exact"},
            "member_id_full_name",
        ),
        ({**PERSON, "birth_date": "other_generation", "member_id": "exact_subscriber_card"}, None),
        (
            {**PERSON, "given_name": "swapped", "family_name": "swapped", "ssn": "exact"},
            "ssn_birth_date_given_name",
        ),
        (
            {**PERSON, "birth_date": "transposed_day_month", "member_id": "is_subscriber_id"},
            "household_full_name_birth_date_typo",
        ),
        # A birth-date typo needs the card and the full name: the home alone is not enough.
        ({**PERSON, "birth_date": "one_typo", "street_address": "exact", "phone": "exact"}, None),
        (
            {**PERSON, "birth_date": "one_typo", "family_name": "else", "subscriber_id": "exact"},
            None,
        ),
        ({**PERSON, "birth_date": "year_off", "subscriber_id": "exact"}, None),
        # A name one typo away and a birth date one typo away: two departures, no rule.
        (
            {
                **PERSON,
                "birth_date": "one_typo",
                "given_name": "one_edit",
                "subscriber_id": "exact",
            },
            None,
        ),
        ({**PERSON, "given_name": "jaro_winkler", "subscriber_id": "exact"}, None),
        (PERSON, None),
    ],
)
def test_rules(levels: dict[str, str], rule: str | None) -> None:
    assert BOOK.fired_rule(vector(**levels)) == rule


@pytest.mark.parametrize(
    ("levels", "violations"),
    [
        ({**PERSON, "member_id": "exact"}, ()),
        ({**PERSON, "given_name": "else", "member_id": "exact"}, ("given_name_conflict",)),
        # The surname is a household's: a birth date beyond a slip beside it is not hers.
        ({**PERSON, "birth_date": "else"}, ("birth_date_conflict", "household_evidence_only")),
        ({**PERSON, "family_name": "else", "birth_date": "else"}, ("birth_date_conflict",)),
        ({**PERSON, "suffix": "else", "member_id": "exact"}, ("suffix_conflict",)),
        # Boy/girl twins Alexander and Alexandra share the nickname Alex.
        (
            {**PERSON, "given_name": "nickname", "sex": "else", "member_id": "exact"},
            ("given_name_conflict",),
        ),
        ({**PERSON, "given_name": "nickname"}, ()),
        # A near miss on the name needs a person-level identifier (Mia and Mila are twins).
        ({**PERSON, "given_name": "jaro_winkler"}, ("given_name_unconfirmed",)),
        # An SSN confirms no typo: a household shares it, and a twin named alike carries it.
        ({**PERSON, "given_name": "one_edit", "ssn": "exact"}, ("given_name_unconfirmed",)),
        ({**PERSON, "given_name": "one_edit", "middle_name": "exact"}, ()),
        # A misspelling the plan's names tell, beside the exact date, is hers; beside a date
        # one slip away it is two departures.
        ({**PERSON, "given_name": "misspelling", "ssn": "exact"}, ()),
        (
            {**PERSON, "given_name": "misspelling", "birth_date": "one_typo", "ssn": "exact"},
            ("household_evidence_only",),
        ),
        ({**PERSON, "given_name": "nickname", "birth_date": "year_off", "ssn": "exact"}, ()),
        (
            {**PERSON, "given_name": "one_edit", "member_id": "exact_subscriber_card"},
            ("given_name_unconfirmed",),
        ),
        ({**PERSON, "given_name": "initial", "ssn": "carried"}, ("given_name_unconfirmed",)),
        (
            {"family_name": "exact", "member_id": "exact"},
            ("given_name_missing", "birth_date_missing"),
        ),
        (
            {**PERSON, "given_name": "else", "birth_date": "else", "suffix": "else"},
            (
                "given_name_conflict",
                "birth_date_conflict",
                "suffix_conflict",
                "household_evidence_only",
            ),
        ),
        # The household's identifiers agree, the person's own evidence does not.
        (
            {**PERSON, "given_name": "similar", "birth_date": "else", "ssn": "exact"},
            ("birth_date_conflict", "given_name_unconfirmed", "household_evidence_only"),
        ),
        (
            {**PERSON, "given_name": "jaro_winkler", "birth_date": "other_generation"},
            ("birth_date_conflict", "given_name_unconfirmed", "household_evidence_only"),
        ),
        ({**PERSON, "ssn": "else"}, ("ssn_mismatch",)),
        ({**PERSON, "ssn": "one_typo"}, ()),
        # The member's own card number is no household's.
        ({**PERSON, "given_name": "else", "member_id": "exact"}, ("given_name_conflict",)),
    ],
)
def test_guards(levels: dict[str, str], violations: tuple[str, ...]) -> None:
    assert BOOK.guard_violations(vector(**levels)) == violations


def test_conflicts_are_the_conflict_guards_only() -> None:
    assert BOOK.conflicts(vector(**{**PERSON, "given_name": "jaro_winkler"})) == ()
    assert BOOK.conflicts(vector(given_name="else")) == ("given_name_conflict",)


def test_custom_rules_compile_against_the_spec() -> None:
    book = RuleBook(rules=(DeterministicRule("phone_only", "test", (("phone", ("exact",)),)),))
    assert book.fired_rule(vector(phone="exact")) == "phone_only"
    with pytest.raises(ValueError):
        RuleBook(rules=(DeterministicRule("bad", "test", (("phone", ("nope",)),)),))


def test_a_rule_with_alternatives_needs_one_of_them() -> None:
    rule = DeterministicRule(
        "name_and_a_phone_or_ssn",
        "test",
        (("given_name", ("exact",)),),
        (("phone", ("exact",)), ("ssn", ("exact",))),
    )
    book = RuleBook(rules=(rule,))
    assert book.fired_rule(vector(given_name="exact", ssn="exact")) == rule.name
    assert book.fired_rule(vector(given_name="exact", phone="exact")) == rule.name
    assert book.fired_rule(vector(given_name="exact", phone="else")) is None
    assert book.fired_rule(vector(phone="exact")) is None
