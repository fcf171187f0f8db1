"""The independent payer-migration generator: shape, determinism, labels and traps."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

import pytest
from faker.providers.person.en_US import Provider as EnUsNames

from payerbridge_tools.bench.identity_migration import LABELS, generate_migration_set
from payerbridge_tools.bench.identity_types import LinkageSet

MEMBER_KEYS = {
    "given",
    "family",
    "suffixes",
    "birth_date",
    "sex",
    "address_lines",
    "postal_code",
    "phone",
    "member_id",
    "subscriber_id",
    "ssn",
    "ssn_carried",
}
REQUEST_KEYS = (MEMBER_KEYS - {"ssn_carried"}) | {"previous_families"}
BRIEF_LABELS = {
    "moved",
    "card:member_id",
    "card:subscriber_id_only",
    "card:subscriber_card",
    "card:none",
    "card:member_id_typo",
    "married",
    "hyphenated",
    "nickname",
    "given_typo",
    "family_typo",
    "names_swapped",
    "middle_as_first",
    "initial_only",
    "accents_dropped",
    "dob_day_01",
    "dob_month_day_0101",
    "dob_digit_typo",
    "dob_day_month_swapped",
    "dob_year_off_by_one",
    "no_ssn",
    "ssn_typo",
    "no_phone",
    "no_sex",
    "no_address",
    "non_member",
    "relative:twin",
    "relative:sibling",
    "relative:parent_namesake",
    "relative:spouse_not_enrolled",
}
SSN = re.compile(r"^(?!666)(?!000)([0-8]\d\d)-(?!00)\d\d-(?!0000)\d{4}$")


@pytest.fixture(scope="module")
def data() -> LinkageSet:
    return generate_migration_set(20_000, seed=3)


def _with(data: LinkageSet, label: str) -> list[int]:
    return [j for j, labels in enumerate(data.request_labels) if label in labels]


def _households(data: LinkageSet) -> dict[int, list[dict[str, Any]]]:
    members: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for member, household in zip(data.members, data.member_household, strict=True):
        members[household].append(member)
    return members


def test_same_seed_same_data_other_seed_other_data() -> None:
    first = generate_migration_set(2_000, seed=5)
    again = generate_migration_set(2_000, seed=5)
    other = generate_migration_set(2_000, seed=6)
    assert first == again
    assert first.members != other.members
    assert first.requests != other.requests


def test_sizes_truth_and_households() -> None:
    data = generate_migration_set(3_000, seed=2, requests=4_500)
    assert data.name == "migration 3,000"
    assert data.note
    assert len(data.members) == 3_000
    assert len(data.requests) == len(data.truth) == len(data.request_labels) == 4_500
    assert len(data.member_household) == 3_000
    assert len(data.request_household) == 4_500
    assert all(-1 <= t < 3_000 for t in data.truth)
    for j, t in enumerate(data.truth):
        if t >= 0:
            assert data.request_household[j] == data.member_household[t]
    # more requests than members: every member is asked about before anyone twice
    about = [t for t in data.truth if t >= 0]
    assert len(set(about)) == 3_000
    assert len(generate_migration_set(500, seed=2).requests) == 500


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        generate_migration_set(0)
    with pytest.raises(ValueError):
        generate_migration_set(10, non_member_share=1.5)


def test_records_hold_only_the_agreed_fields(data: LinkageSet) -> None:
    for member in data.members:
        assert set(member) <= MEMBER_KEYS
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", member["birth_date"])
        assert re.fullmatch(r"\d{5}", member["postal_code"])
        assert member.get("sex", "male") in ("male", "female")
        assert "phone" not in member or re.fullmatch(r"\d{3}-\d{3}-\d{4}", member["phone"])
        assert "ssn" not in member or SSN.match(member["ssn"])
        assert ("ssn" in member) == ("ssn_carried" in member)
        assert member["given"] and all(member["given"])
    for request in data.requests:
        assert set(request) <= REQUEST_KEYS
        assert "ssn" not in request or re.fullmatch(r"\d{3}-\d\d-\d{4}", request["ssn"])
    assert len({m["member_id"] for m in data.members}) == len(data.members)
    assert 500 < len({m["postal_code"] for m in data.members}) < 5_000


def test_households_share_card_and_address_with_sequential_ids(data: LinkageSet) -> None:
    sequential = 0
    for people in _households(data).values():
        assert len({p["subscriber_id"] for p in people}) == 1
        assert people[0]["member_id"] == people[0]["subscriber_id"]
        assert len({p["postal_code"] for p in people}) == 1
        numbers = [int(p["member_id"][3:]) for p in people]
        sequential += any(b - a == 1 for a, b in zip(numbers, numbers[1:], strict=False))
    assert sequential > 1_000
    carried = [m for m in data.members if m.get("ssn_carried")]
    subscriber_ssns = {m.get("ssn") for m in data.members if m["member_id"] == m["subscriber_id"]}
    assert carried and all(m["member_id"] != m["subscriber_id"] for m in carried)
    assert sum(m["ssn"] in subscriber_ssns for m in carried) > 0.8 * len(carried)
    assert {"Jr"} in [set(m.get("suffixes", ())) for m in data.members]


def test_population_has_twins_among_members(data: LinkageSet) -> None:
    twins = 0
    for people in _households(data).values():
        births = Counter(p["birth_date"] for p in people)
        twins += any(count > 1 for count in births.values())
    assert twins > 20


def test_every_label_occurs(data: LinkageSet) -> None:
    seen = {label for labels in data.request_labels for label in labels}
    assert seen >= BRIEF_LABELS
    assert seen <= set(LABELS)
    for labels in data.request_labels:
        assert sum(label.startswith("card:") for label in labels) == 1


def test_most_requests_have_few_events(data: LinkageSet) -> None:
    events = [
        sum(not label.startswith("card:") for label in labels)
        for labels, t in zip(data.request_labels, data.truth, strict=True)
        if t >= 0
    ]
    assert sum(count <= 2 for count in events) > 0.85 * len(events)


@pytest.mark.parametrize("share", [0.1, 0.3])
def test_non_member_share(share: float) -> None:
    data = generate_migration_set(4_000, seed=9, non_member_share=share)
    non_members = [j for j, t in enumerate(data.truth) if t < 0]
    assert len(non_members) == pytest.approx(share * 4_000, rel=0.02)
    assert set(non_members) == set(_with(data, "non_member"))
    relatives = [j for j in non_members if data.request_household[j] >= 0]
    assert len(relatives) == pytest.approx(len(non_members) / 2, rel=0.1)


def test_relatives_live_with_their_member_but_are_not_members(data: LinkageSet) -> None:
    households = _households(data)
    relatives = [j for j, labels in enumerate(data.request_labels) if "relative:" in str(labels)]
    assert len(relatives) > 800
    for j in relatives:
        request = data.requests[j]
        assert data.truth[j] == -1
        people = households[data.request_household[j]]
        assert request["family"] in {p["family"] for p in people}
        assert request["address_lines"] == people[0]["address_lines"]
        same_person = [
            p
            for p in people
            if p["given"][0] == request["given"][0] and p["birth_date"] == request["birth_date"]
        ]
        assert not same_person
        if "member_id" in request or "subscriber_id" in request:
            assert request.get("subscriber_id") == people[0]["subscriber_id"]


def test_twins_share_the_birth_date_not_the_name(data: LinkageSet) -> None:
    households = _households(data)
    for j in _with(data, "relative:twin"):
        request = data.requests[j]
        people = households[data.request_household[j]]
        twins = [
            p
            for p in people
            if p["birth_date"] == request["birth_date"] and p["family"] == request["family"]
        ]
        assert twins
        assert all(p["given"][0] != request["given"][0] for p in twins)


def test_namesake_fathers_are_a_generation_older(data: LinkageSet) -> None:
    households = _households(data)
    for j in _with(data, "relative:parent_namesake"):
        request = data.requests[j]
        assert "suffixes" not in request and request.get("sex", "male") == "male"
        sons = [
            p
            for p in households[data.request_household[j]]
            if p["given"][0] == request["given"][0] and p["family"] == request["family"]
        ]
        assert any(int(s["birth_date"][:4]) - int(request["birth_date"][:4]) >= 20 for s in sons)


def test_moved_requests_live_elsewhere(data: LinkageSet) -> None:
    moved = _with(data, "moved")
    assert len(moved) == pytest.approx(0.25 * data.about_members, rel=0.15)
    for j in moved:
        member = data.members[data.truth[j]]
        request = data.requests[j]
        assert request.get("address_lines") != member["address_lines"]
    no_card = sum("card:none" in data.request_labels[j] for j in moved)
    assert no_card > 0.5 * len(moved)


def test_card_labels_say_what_the_card_shows(data: LinkageSet) -> None:
    for j, labels in enumerate(data.request_labels):
        if data.truth[j] < 0:
            continue
        request, member = data.requests[j], data.members[data.truth[j]]
        if "card:member_id" in labels:
            assert request["member_id"] == member["member_id"]
        elif "card:member_id_typo" in labels:
            wrong = [a != b for a, b in zip(request["member_id"], member["member_id"], strict=True)]
            assert sum(wrong) == 1
        elif "card:subscriber_card" in labels:
            assert request["member_id"] == member["subscriber_id"] != member["member_id"]
        elif "card:subscriber_id_only" in labels:
            assert "member_id" not in request
            assert request["subscriber_id"] == member["subscriber_id"]
        else:
            assert "member_id" not in request and "subscriber_id" not in request


def test_birth_date_labels(data: LinkageSet) -> None:
    def birth(j: int) -> tuple[str, str]:
        return data.requests[j]["birth_date"], data.members[data.truth[j]]["birth_date"]

    for j in _with(data, "dob_day_01"):
        assert birth(j)[0].endswith("-01") and birth(j)[0] != birth(j)[1]
    for j in _with(data, "dob_month_day_0101"):
        assert birth(j)[0][4:] == "-01-01"
    for j in _with(data, "dob_day_month_swapped"):
        new, old = birth(j)
        assert (new[:4], new[5:7], new[8:]) == (old[:4], old[8:], old[5:7])
    for j in _with(data, "dob_year_off_by_one"):
        new, old = birth(j)
        assert abs(int(new[:4]) - int(old[:4])) == 1
    for j in _with(data, "dob_digit_typo"):
        new, old = birth(j)
        assert sum(a != b for a, b in zip(new, old, strict=True)) == 1


def test_name_labels(data: LinkageSet) -> None:
    for j in _with(data, "names_swapped"):
        member = data.members[data.truth[j]]
        request = data.requests[j]
        other_changes = {"given_typo", "family_typo", "married", "hyphenated", "accents_dropped"}
        if not other_changes & set(data.request_labels[j]):
            assert request["given"][0].lower() == member["family"].lower()
    for j in _with(data, "initial_only"):
        if "names_swapped" not in data.request_labels[j]:
            assert len(data.requests[j]["given"][0]) == 1
    married = _with(data, "married")
    assert any("previous_families" in data.requests[j] for j in married)
    for j in married:
        assert data.requests[j]["family"] != data.members[data.truth[j]]["family"]
    for j in _with(data, "accents_dropped"):
        request = data.requests[j]
        assert "".join([*request["given"], request["family"]]).isascii()


def test_names_come_from_many_cultures(data: LinkageSet) -> None:
    en_us = set(EnUsNames.last_names)
    families = [m["family"] for m in data.members]
    foreign = [f for f in families if f not in en_us]
    assert len(foreign) > 0.2 * len(families)
    assert any(" " in f for f in families)  # Hispanic double surnames
    assert any(not f.isascii() for f in families)  # accents let through
    assert any(f == "Nguyễn" for f in families)
    givens = {m["given"][0] for m in data.members}
    assert {"María José", "Anne-Marie"} & givens or any(" " in g for g in givens)
    # skewed like the real US: a few very common surnames, thousands of rare ones
    counts = Counter(families).most_common()
    assert counts[0][1] > 100
    assert sum(1 for _, count in counts if count == 1) > 1_000
