"""Blocking keys: a true match with one typo shares a key; keys hold no PHI; buckets stay small."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.identity.demographics.standardize import Demographics, standard_record
from payerbridge.identity.matching.blocking import BLOCKING_RULES, blocking_keys
from payerbridge_tools.bench.identity_data import generate_identity_set
from payerbridge_tools.population.vocabulary import FEMALE_NAMES, MALE_NAMES, SURNAMES

SECRET = b"test-blocking-secret"
BASE: dict[str, Any] = {
    "given": ["Margaret"],
    "family": "Garcia-Lopez",
    "birth_date": "1980-02-03",
    "sex": "female",
    "address_lines": ["12 Oak Street"],
    "postal_code": "62701",
    "phone": "2175550101",
    "member_id": "M123456",
    "subscriber_id": "S123456",
    "ssn": "123-45-6780",
}


def keys(**fields: Any) -> frozenset[str]:
    return blocking_keys(standard_record(Demographics(**fields)), secret=SECRET)


def test_keys_are_prefixed_fixed_width_hashes_without_phi() -> None:
    found = keys(**BASE)
    prefixes = {rule.prefix for rule in BLOCKING_RULES}
    assert {key.split(":")[0] for key in found} == prefixes
    assert all(len(key.split(":")[1]) == 16 for key in found)
    text = " ".join(found).lower()
    for value in (
        "123456780",
        "6780",
        "19800203",
        "1980",
        "garcia",
        "margaret",
        "m123456",
        "2175550101",
        "62701",
    ):
        assert value not in text


def test_keys_depend_on_the_secret_and_nothing_else() -> None:
    assert keys(**BASE) == keys(**BASE)
    assert keys(**BASE).isdisjoint(
        blocking_keys(standard_record(Demographics(**BASE)), secret=b"other")
    )
    long_secret = b"x" * 100
    assert blocking_keys(standard_record(Demographics(**BASE)), secret=long_secret)


def test_missing_fields_give_fewer_keys_and_an_empty_record_none() -> None:
    assert blocking_keys(standard_record(Demographics()), secret=SECRET) == frozenset()
    only_card = keys(member_id="M1")
    assert len(only_card) == 1 and next(iter(only_card)).startswith("mid:")


def test_every_surname_token_and_nickname_root_gets_keys() -> None:
    assert keys(**BASE) & keys(
        **{
            **BASE,
            "family": "Lopez",
            "member_id": None,
            "ssn": None,
            "phone": None,
            "subscriber_id": None,
            "given": ["Peggy"],
        }
    )
    married = {
        **BASE,
        "family": "Nguyen",
        "previous_families": ["Garcia"],
        "member_id": None,
        "ssn": None,
        "phone": None,
        "subscriber_id": None,
        "postal_code": None,
    }
    assert keys(**BASE) & keys(**married)


def _typo(text: str, position: int, kind: str) -> str:
    i = max(1, min(position, len(text) - 2))
    if kind == "substitute":
        return text[:i] + ("x" if text[i] != "x" else "y") + text[i + 1 :]
    if kind == "delete":
        return text[:i] + text[i + 1 :]
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def _birth_date_error(dob: str, kind: str, position: int) -> str:
    day = date.fromisoformat(dob)
    if kind == "swap" and day.day <= 12:
        return f"{day.year}-{day.day:02d}-{day.month:02d}"
    if kind == "year":
        return f"{day.year + (1 if position % 2 else -1)}-{day.month:02d}-{day.day:02d}"
    return (day + timedelta(days=1 + position % 5)).isoformat()  # one digit of the day


people = st.fixed_dictionaries(
    {
        "given": st.sampled_from(MALE_NAMES + FEMALE_NAMES).map(lambda name: [name]),
        "family": st.sampled_from(SURNAMES),
        "birth_date": st.dates(date(1930, 1, 1), date(2020, 12, 31)).map(date.isoformat),
        "sex": st.sampled_from(["male", "female"]),
        "address_lines": st.integers(1, 9999).map(lambda n: [f"{n} Oak Street"]),
        "postal_code": st.sampled_from(["62701", "10001", "99501"]),
        "phone": st.integers(0, 9999).map(lambda n: f"217555{n:04d}"),
        "member_id": st.integers(10**6, 10**7).map(lambda n: f"M{n}"),
        "subscriber_id": st.integers(10**6, 10**7).map(lambda n: f"S{n}"),
        "ssn": st.integers(10**6, 10**7).map(
            lambda n: f"123{n % 100 or 1:02d}{n % 10**4 or 1:04d}"
        ),
    }
)


@given(
    people,
    st.sampled_from(sorted(BASE)),
    st.integers(0, 20),
    st.sampled_from(["substitute", "delete", "swap", "year", "drop"]),
)
@settings(max_examples=200)
def test_one_typo_in_any_single_field_still_shares_a_key(
    person: dict[str, Any], field: str, position: int, kind: str
) -> None:
    noisy = dict(person)
    value = person[field]
    if kind == "drop":
        noisy.pop(field)
    elif field == "birth_date":
        noisy[field] = _birth_date_error(value, kind, position)
    elif field == "given":
        noisy[field] = [_typo(value[0], position, kind)] if len(value[0]) > 3 else ["X"]
    elif field == "address_lines":
        noisy[field] = [_typo(value[0], position, kind)]
    elif field == "sex":
        noisy[field] = "male" if value == "female" else "female"
    elif len(value) > 3:
        noisy[field] = _typo(value, position, kind if kind != "year" else "substitute")
    assert keys(**person) & keys(**noisy)


def test_buckets_stay_small_in_a_skewed_population() -> None:
    population = generate_identity_set(5_000, seed=11)
    buckets: Counter[str] = Counter()
    for fields in population.iter_member_fields():
        buckets.update(blocking_keys(standard_record(Demographics(**fields)), secret=SECRET))
    sizes = sorted(buckets.values())
    assert sizes[-1] <= 25  # the largest bucket, in a population with very common names
    assert sum(sizes) / len(sizes) < 2.5
