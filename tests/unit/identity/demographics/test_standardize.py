"""Standardisation of names, dates, sex, addresses, ZIP, phone, ids and SSN."""

from __future__ import annotations

import json

import pytest

from payerbridge.identity.demographics.addresses import StreetAddress, standard_street_address
from payerbridge.identity.demographics.nicknames import NICKNAME_ROOTS, ROOTS, name_roots
from payerbridge.identity.demographics.standardize import (
    Demographics,
    fold,
    standard_birth_date,
    standard_identifier,
    standard_phone,
    standard_postal_code,
    standard_record,
    standard_sex,
    standard_ssn,
    standard_suffix,
)
from payerbridge.identity.model import record_from_dict, record_to_dict


def test_fold_strips_accents_and_case() -> None:
    assert fold("GARCÍA") == "garcia"
    assert fold("Müller") == "muller"
    assert fold("Øst Łukasz Æsa") == "ost lukasz aesa"


@pytest.mark.parametrize(
    ("given", "first", "roots"),
    [
        (["William"], "william", ("william",)),
        (["Bill"], "bill", ("william",)),
        (["  BOB "], "bob", ("robert",)),
        (["Peggy"], "peggy", ("margaret",)),
        (["Alex"], "alex", ("alexander", "alexandra")),
        (["José"], "jose", ("jose",)),
        (["Anne-Marie"], "annemarie", ("annemarie",)),
        (["D'Andre"], "dandre", ("dandre",)),
        (["J."], "j", ("j",)),
        (["Mary Ann", "Louise"], "mary", ("mary",)),
    ],
)
def test_first_name_and_nickname_roots(given: list[str], first: str, roots: tuple[str]) -> None:
    record = standard_record(Demographics(given=given))
    assert (record.first_name, record.first_name_roots) == (first, roots)


def test_every_given_part_is_a_token() -> None:
    record = standard_record(Demographics(given=["Anne-Marie", "Louise Grace"]))
    assert record.given_name_tokens == {"anne", "marie", "louise", "grace"}


@pytest.mark.parametrize(
    ("family", "previous", "joined", "tokens"),
    [
        ("García-López", [], "garcialopez", {"garcia", "lopez"}),
        ("De la Cruz", [], "delacruz", {"cruz"}),
        ("O'Brien", [], "obrien", {"obrien"}),
        ("St. John", [], "stjohn", {"john"}),
        ("Jones", ["Smith"], "jones", {"jones", "smith"}),
        ("  ", [], None, set()),
    ],
)
def test_surnames_join_and_split(
    family: str, previous: list[str], joined: str | None, tokens: set[str]
) -> None:
    record = standard_record(Demographics(family=family, previous_families=previous))
    assert (record.family_name, record.family_name_tokens) == (joined, tokens)


@pytest.mark.parametrize(
    ("kwargs", "suffix", "family", "first"),
    [
        ({"given": ["John"], "family": "Smith", "suffixes": ["Jr."]}, "JR", "smith", "john"),
        ({"given": ["John"], "family": "Smith Sr"}, "SR", "smith", "john"),
        ({"given": ["John", "III"], "family": "Smith"}, "III", "smith", "john"),
        ({"given": ["John"], "family": "Smith", "suffixes": ["MD", "2nd"]}, "II", "smith", "john"),
        ({"given": ["John"], "family": "Smith", "suffixes": ["PhD"]}, None, "smith", "john"),
        # A lone "V" is an initial, not "the fifth".
        ({"given": ["John", "V"], "family": "Smith"}, None, "smith", "john"),
    ],
)
def test_generational_suffixes_are_their_own_field(
    kwargs: dict[str, object], suffix: str | None, family: str, first: str
) -> None:
    record = standard_record(Demographics(**kwargs))  # type: ignore[arg-type]
    assert (record.suffix, record.family_name, record.first_name) == (suffix, family, first)


def test_standard_suffix_values() -> None:
    assert [standard_suffix(s) for s in ("Jr", "junior", "SR.", "iv", "3rd", "Esq", None)] == [
        "JR",
        "JR",
        "SR",
        "IV",
        "III",
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1980-02-03", "19800203"),
        ("1980-02-03T10:00:00Z", "19800203"),
        ("19800203", "19800203"),
        ("02/03/1980", "19800203"),
        ("1980", None),
        ("1980-02", None),
        ("1980-02-30", None),
        ("1980-13-01", None),
        ("abcd-ef-gh", None),
        ("١٩٨٠-٠٢-٠٣", None),
        ("", None),
        (None, None),
    ],
)
def test_birth_dates(value: str | None, expected: str | None) -> None:
    assert standard_birth_date(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("male", "M"),
        ("FEMALE", "F"),
        ("M", "M"),
        ("F", "F"),
        ("other", "O"),
        ("unknown", None),
        ("UNK", None),
        (None, None),
    ],
)
def test_sex(value: str | None, expected: str | None) -> None:
    assert standard_sex(value) == expected


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["123 North Main Street", "Apt 4B"], ("123", "N MAIN ST", "4B")),
        (["123 N. Main St. #4-B"], ("123", "N MAIN ST", "4B")),
        (["123 n main st unit 4b"], ("123", "N MAIN ST", "4B")),
        (["45 First Avenue Suite 200"], ("45", "1ST AVE", "200")),
        (["9 West Lincoln Boulevard"], ("9", "W LINCOLN BLVD", None)),
        (["1st Street"], (None, "1ST ST", None)),
        (["P.O. Box 42"], ("42", "PO BOX", None)),
        (["Post Office Box 42"], ("42", "PO BOX", None)),
        (["Apt # 7", "77 Elm Ct"], ("77", "ELM CT", "7")),
        ([], (None, None, None)),
    ],
)
def test_street_addresses(lines: list[str], expected: tuple[str | None, ...]) -> None:
    assert standard_street_address(lines) == StreetAddress(*expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("62701", "62701"),
        ("62701-1234", "62701"),
        ("627011234", "62701"),
        ("2134", "02134"),
        ("00000", None),
        ("12", None),
        ("1234567", None),
        (None, None),
    ],
)
def test_postal_codes(value: str | None, expected: str | None) -> None:
    assert standard_postal_code(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("(217) 555-0101", "2175550101"),
        ("+1 217.555.0101", "2175550101"),
        ("217-555-0101 ext. 42", "2175550101"),
        ("217 555 0101x9", "2175550101"),
        ("555-0101", None),
        ("0000000000", None),
        (None, None),
    ],
)
def test_phones(value: str | None, expected: str | None) -> None:
    assert standard_phone(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("w-123 456", "W123456"), ("ABC.00/1", "ABC001"), (" - ", None), (None, None)],
)
def test_identifiers(value: str | None, expected: str | None) -> None:
    assert standard_identifier(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("123-45-6780", "123456780"),
        ("123456780", "123456780"),
        ("000-12-3456", None),
        ("666-12-3456", None),
        ("912-12-3456", None),
        ("123-00-4567", None),
        ("123-45-0000", None),
        ("123-45-6789", None),
        ("078-05-1120", None),
        ("111-11-1111", None),
        ("12345678", None),
        (None, None),
    ],
)
def test_ssn_validity(value: str | None, expected: str | None) -> None:
    assert standard_ssn(value) == expected


def test_carried_flag_needs_a_valid_ssn() -> None:
    assert standard_record(Demographics(ssn="123-45-6780", ssn_carried=True)).ssn_carried
    assert not standard_record(Demographics(ssn="000-00-0000", ssn_carried=True)).ssn_carried


def test_repr_names_fields_but_never_values() -> None:
    given = Demographics(given=["Ana"], family="Garcia", birth_date="1980-02-03", ssn="123-45-6780")
    record = standard_record(given)
    text = repr(record)
    assert "first_name" in text and "ssn" in text
    for secret in ("ana", "garcia", "1980", "123456780"):
        assert secret not in text.lower()
    # The demographics as given, before standardisation, are as closed.
    raw = repr(given)
    assert raw.startswith("Demographics(") and "family" in raw and "ssn" in raw
    for secret in ("ana", "garcia", "1980", "123-45-6780"):
        assert secret not in raw.lower()


def test_nickname_table_is_modest_and_consistent() -> None:
    assert len(NICKNAME_ROOTS) < 500
    for root, names in ROOTS.items():
        assert root in name_roots(root)
        for name in names:
            assert root in name_roots(name), name
            assert name == fold(name) and name.isalpha()
    assert name_roots("zebediah") == ("zebediah",)


def test_records_round_trip_through_json() -> None:
    record = standard_record(
        Demographics(
            given=["Bill", "J"],
            family="Garcia-Lopez",
            suffixes=["Jr"],
            birth_date="1980-02-03",
            sex="male",
            address_lines=["1 Oak St #2"],
            postal_code="62701",
            phone="2175550101",
            member_id="M1",
            subscriber_id="S1",
            ssn="123-45-6780",
            ssn_carried=True,
        )
    )
    stored = json.loads(json.dumps(record_to_dict(record)))
    assert record_from_dict(stored) == record
    assert record_from_dict({}) == standard_record(Demographics())
