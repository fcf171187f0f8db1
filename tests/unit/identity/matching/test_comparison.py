"""Each comparison puts pairs in the right level, symmetrically; the spec fits its comparators."""

from __future__ import annotations

from typing import Any

import pytest

from payerbridge.identity.demographics.standardize import Demographics, standard_record
from payerbridge.identity.matching.comparison import Comparator
from payerbridge.identity.matching.spec import (
    DEFAULT_SPEC,
    Comparison,
    ComparisonLevel,
    ComparisonSpec,
)


def level(comparison: str, left: dict[str, Any], right: dict[str, Any]) -> str:
    """The level name of one comparison for two records given as raw fields (checks symmetry)."""
    spec_comparison = DEFAULT_SPEC.comparisons[DEFAULT_SPEC.index(comparison)]
    a, b = standard_record(Demographics(**left)), standard_record(Demographics(**right))
    forward = spec_comparison.comparator.level_of(a, b)
    assert forward == spec_comparison.comparator.level_of(b, a), "comparison is not symmetric"
    return spec_comparison.level_names[forward]


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (["William"], ["WILLIAM"], "exact"),
        (["Bill"], ["William"], "nickname"),
        (["Peggy"], ["Margaret"], "nickname"),
        (["Alex"], ["Alexandra"], "nickname"),
        # The nicknames dataset's variants: given names in their own right too.
        (["Jonathon"], ["Jonathan"], "name_variant"),
        (["Lisa"], ["Alice"], "name_variant"),
        (["Christpher"], ["Christopher"], "jaro_winkler"),
        # Two typos, or a transliteration: too far for one slip, too close to call different.
        (["Katelynn"], ["Kaitlyn"], "similar"),
        (["Mohammed"], ["Muhammad"], "similar"),
        (["Mai"], ["Mia"], "one_edit"),
        (["J."], ["James"], "initial"),
        (["J"], ["Robert"], "else"),
        # Given names run together: the same letters, the same name.
        (["Meiling"], ["Mei", "Ling"], "written_as_one"),
        (["Mariaambar"], ["María Ámbar"], "written_as_one"),
        (["Jean-Paul"], ["Jean", "Paul"], "written_as_one"),
        # Not a given name of the other's run together: Mei Hua is no Mei Ling.
        (["Meihua"], ["Mei", "Ling"], "similar"),
        (["Grace"], ["Mary", "Grace"], "given_name_token"),
        (["Anne"], ["Anne-Marie"], "given_name_token"),
        (["Emma"], ["Olivia"], "else"),
        ([], ["Olivia"], "null"),
    ],
)
def test_given_name_levels(left: list[str], right: list[str], expected: str) -> None:
    assert level("given_name", {"given": left}, {"given": right}) == expected


@pytest.mark.parametrize(
    ("left", "right", "given", "middle"),
    [
        # Brothers Luis Aurelio and Luis Fabián; sisters María José and María Fernanda.
        (["Luis Aurelio"], ["Luis Fabián"], "other_middle_name", "else"),
        (["María José"], ["Maria", "Fernanda"], "other_middle_name", "else"),
        # One person: a compound name split over two fields, a middle initial, none given.
        (["María José"], ["Maria", "Jose"], "exact", "exact"),
        (["John", "M."], ["John", "Michael"], "exact", "initial"),
        (["John"], ["John", "Michael"], "exact", "null"),
        (["Bill", "Henry"], ["William", "H"], "nickname", "initial"),
        # A compound first name against its first word alone: her, or her twin María.
        (["María Elena"], ["María"], "given_name_token", "null"),
        (["José"], ["José Clemente"], "given_name_token", "null"),
        (["María Elena"], ["Maria", "E."], "exact", "initial"),
        (["John", "Michael"], ["John", "Michael Andrew"], "exact", "exact"),
        # Twins: a compound first name and a middle name, one of them in common.
        (["Juan José", "Pablo"], ["Juan", "Pablo Ricardo"], "given_name_token", "shared"),
    ],
)
def test_middle_names(left: list[str], right: list[str], given: str, middle: str) -> None:
    assert level("given_name", {"given": left}, {"given": right}) == given
    assert level("middle_name", {"given": left}, {"given": right}) == middle


def test_given_and_family_name_entered_the_other_way_round() -> None:
    swapped, record = {"given": ["Garcia"], "family": "Ana"}, {"given": ["Ana"], "family": "Garcia"}
    assert level("given_name", swapped, record) == "swapped"
    assert level("family_name", swapped, record) == "swapped"
    # Crosswise agreement on one side only is no swap: Jordan Taylor and Taylor Smith.
    assert (
        level(
            "given_name",
            {"given": ["Taylor"], "family": "Smith"},
            {"given": ["Jordan"], "family": "Taylor"},
        )
        == "else"
    )


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ({"family": "García"}, {"family": "GARCIA"}, "exact"),
        ({"family": "De la Cruz"}, {"family": "Delacruz"}, "exact"),
        ({"family": "Garcia-Lopez"}, {"family": "Lopez"}, "token_overlap"),
        ({"family": "Jones", "previous_families": ["Smith"]}, {"family": "Smith"}, "token_overlap"),
        ({"family": "De la Cruz"}, {"family": "De Leon"}, "else"),  # particles never agree
        ({"family": "Thompson"}, {"family": "Thomson"}, "jaro_winkler"),
        # Typos Jaro-Winkler scores low: early in the name, or in a short one.
        ({"family": "Qkonkwo"}, {"family": "Okonkwo"}, "one_edit"),
        ({"family": "Boda"}, {"family": "Boada"}, "one_edit"),
        ({"family": "Lee"}, {"family": "Lea"}, "one_edit"),
        ({"family": "Li"}, {"family": "Lu"}, "else"),
        ({"family": "Nguyen"}, {"family": "Smith"}, "else"),
        ({}, {"family": "Smith"}, "null"),
    ],
)
def test_family_name_levels(left: dict[str, Any], right: dict[str, Any], expected: str) -> None:
    assert level("family_name", left, right) == expected


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ("1980-02-03", "1980-02-03", "exact"),
        ("1980-02-03", "1980-03-02", "transposed_day_month"),
        ("1980-02-03", "1980-02-08", "one_typo"),
        ("1980-12-03", "1980-12-30", "one_typo"),  # adjacent digits swapped
        ("1989-02-03", "1990-02-03", "year_off"),
        ("1980-02-03", "1981-02-03", "one_typo"),  # a year off by one is often one digit
        # One digit apart but a generation apart: a father and his namesake son.
        ("1955-08-08", "1995-08-08", "other_generation"),
        ("1955-06-01", "1982-06-01", "other_generation"),
        ("1980-02-03", None, "null"),
    ],
)
def test_birth_date_levels(left: str, right: str | None, expected: str) -> None:
    assert level("birth_date", {"birth_date": left}, {"birth_date": right}) == expected


@pytest.mark.parametrize(
    ("comparison", "field", "left", "right", "expected"),
    [
        ("sex", "sex", "male", "M", "exact"),
        ("sex", "sex", "male", "female", "else"),
        ("sex", "sex", "unknown", "female", "null"),
        ("suffix", "suffixes", ["Jr"], ["Jr."], "exact"),
        ("suffix", "suffixes", ["Jr"], ["Sr"], "else"),
        ("suffix", "suffixes", ["Jr"], [], "null"),
        ("subscriber_id", "subscriber_id", "s-1", "S1", "exact"),
        ("subscriber_id", "subscriber_id", "S1", "S2", "else"),
        ("postal_code", "postal_code", "62701-1234", "62701", "exact"),
        ("postal_code", "postal_code", "62701", "62704", "same_zip3"),
        ("postal_code", "postal_code", "62701", "10001", "else"),
        ("phone", "phone", "(217) 555-0101", "2175550101", "exact"),
        ("phone", "phone", "2175550101", "2175550110", "one_typo"),
        ("phone", "phone", "2175550101", "2715550101", "one_typo"),
        ("phone", "phone", "2175550101", "2179990707", "same_area_code"),
        ("phone", "phone", "2175550101", "3125559999", "else"),
    ],
)
def test_simple_levels(
    comparison: str, field: str, left: object, right: object, expected: str
) -> None:
    assert level(comparison, {field: left}, {field: right}) == expected


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (["123 North Main Street", "Apt 4B"], ["123 N Main St #4B"], "exact"),
        (["123 N Main St", "Apt 4B"], ["123 N Main St"], "same_house_and_street"),
        (["123 N Main St"], ["123 N Mian St"], "same_house_similar_street"),
        (["123 N Main St"], ["125 N Main St"], "else"),
        (["123 N Main St"], ["123 Oak Ave"], "else"),
        (["PO Box 4"], ["P.O. Box 4"], "exact"),
        ([], ["123 N Main St"], "null"),
    ],
)
def test_street_address_levels(left: list[str], right: list[str], expected: str) -> None:
    assert level("street_address", {"address_lines": left}, {"address_lines": right}) == expected


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ({"member_id": "W123"}, {"member_id": "w-123"}, "exact"),
        ({"member_id": "W1234"}, {"member_id": "W1243"}, "one_typo"),
        # The subscriber's own card: relatives who never enrolled show it too.
        (
            {"member_id": "HEAD99"},
            {"member_id": "HEAD99", "subscriber_id": "HEAD99"},
            "exact_subscriber_card",
        ),
        (
            {"member_id": "HEAD99", "subscriber_id": "HEAD99"},
            {"member_id": "HEAD99"},
            "exact_subscriber_card",
        ),
        # A dependent's request shows the subscriber's number from the card.
        (
            {"member_id": "HEAD99"},
            {"member_id": "KID777", "subscriber_id": "HEAD99"},
            "is_subscriber_id",
        ),
        # Sequential card numbers: the subscriber's M100 is one edit from the son's M104,
        # and still says "same household", not "a typo of the son's card".
        ({"member_id": "M100"}, {"member_id": "M104", "subscriber_id": "M100"}, "is_subscriber_id"),
        ({"member_id": "A1"}, {"member_id": "ZZZ9"}, "else"),
        ({}, {"member_id": "ZZZ9"}, "null"),
    ],
)
def test_member_id_levels(left: dict[str, Any], right: dict[str, Any], expected: str) -> None:
    assert level("member_id", left, right) == expected


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ({"ssn": "123-45-6780"}, {"ssn": "123456780"}, "exact"),
        ({"ssn": "123-45-6780"}, {"ssn": "123456780", "ssn_carried": True}, "carried"),
        ({"ssn": "123-45-6780"}, {"ssn": "123-45-6781"}, "one_typo"),
        ({"ssn": "123-45-6780"}, {"ssn": "321-54-0876"}, "else"),
        # The record holds the subscriber's SSN; the request gives the dependent's own.
        ({"ssn": "123-45-6780"}, {"ssn": "321-54-0876", "ssn_carried": True}, "null"),
        ({"ssn": "123-45-6789"}, {"ssn": "123-45-6789"}, "null"),  # placeholder: no SSN
    ],
)
def test_ssn_levels(left: dict[str, Any], right: dict[str, Any], expected: str) -> None:
    assert level("ssn", left, right) == expected


def test_spec_levels_must_fit_the_comparator() -> None:
    comparator = DEFAULT_SPEC.comparisons[0].comparator
    with pytest.raises(ValueError, match="do not match"):
        Comparison("x", "", comparator, (ComparisonLevel("exact", 1.0, 1.0),))
    sex = DEFAULT_SPEC.comparisons[DEFAULT_SPEC.index("sex")].comparator
    with pytest.raises(ValueError, match="sums to"):
        Comparison(
            "x", "", sex, (ComparisonLevel("exact", 0.5, 0.5), ComparisonLevel("else", 0.2, 0.5))
        )


def test_fingerprint_changes_with_a_threshold_and_names_are_unique() -> None:
    sex = DEFAULT_SPEC.comparisons[DEFAULT_SPEC.index("sex")]
    looser = Comparator(
        sex.comparator.kind,
        sex.comparator.level_names,
        sex.comparator.level_of,
        (("threshold", 0.5),),
    )
    changed = ComparisonSpec((Comparison("sex", "", looser, sex.levels),))
    assert changed.fingerprint != ComparisonSpec((sex,)).fingerprint
    with pytest.raises(ValueError, match="unique"):
        ComparisonSpec((sex, sex))
