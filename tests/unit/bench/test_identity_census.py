"""The census-structured payer-migration generator: shape, determinism, the household
structures drawn from its census shares, the identifiers families share, and labels."""

from __future__ import annotations

from collections import Counter, defaultdict
from functools import cache

import pytest

from payerbridge_tools.bench.identity_census import (
    CHILDREN_UNDER_18,
    HOUSEHOLD_TYPES,
    LABELS,
    SOURCES,
    generate_census_set,
)
from payerbridge_tools.bench.identity_types import LinkageSet


@cache
def population() -> LinkageSet:
    return generate_census_set(6000, seed=3, requests=3000)


def test_the_set_has_the_members_and_requests_asked_for_with_valid_truth() -> None:
    data = population()
    assert len(data.members) == 6000 and len(data.requests) == 3000
    assert len(data.truth) == len(data.request_household) == len(data.request_labels) == 3000
    assert len(data.member_household) == 6000
    assert data.about_members == 2700  # a tenth of the requests are about non-members
    for j, member in enumerate(data.truth):
        if member >= 0:
            assert data.request_household[j] == data.member_household[member]
            assert "non_member" not in data.request_labels[j]
        else:
            assert "non_member" in data.request_labels[j]


def test_the_same_seed_gives_the_same_set_and_another_seed_another() -> None:
    first = generate_census_set(300, seed=5, requests=100)
    again = generate_census_set(300, seed=5, requests=100)
    other = generate_census_set(300, seed=6, requests=100)
    assert (first.members, first.requests) == (again.members, again.requests)
    assert first.members != other.members


def test_every_label_is_declared_and_every_share_names_its_source() -> None:
    used = {label for labels in population().request_labels for label in labels}
    assert used <= set(LABELS)
    assert {"HOUSEHOLD_TYPES", "CHILDREN_UNDER_18", "TWIN_DELIVERY_RATE"} <= set(SOURCES)
    # As published, rounded (0.999): the rest falls to the last type.
    assert sum(share for _, share in HOUSEHOLD_TYPES) == pytest.approx(1.0, abs=0.002)
    assert sum(share for _, share in CHILDREN_UNDER_18) == pytest.approx(1.0, abs=1e-9)


def test_household_types_follow_the_census_shares() -> None:
    """Each request about a member names its household's type: over the member requests,
    the types are in proportion to the census shares weighted by how many members each
    type enrols (a couple with children enrols more than a person living alone)."""
    data = population()
    kinds: Counter[str] = Counter()
    for j, member in enumerate(data.truth):
        if member >= 0:
            kinds.update(
                label
                for label in data.request_labels[j]
                if label.startswith("household:")
                and label.split(":")[1] in {k for k, _ in HOUSEHOLD_TYPES}
            )
    total = sum(kinds.values())
    alone = kinds["household:alone"] / total
    families = kinds["household:couple_children"] / total
    assert 0.08 < alone < 0.2  # 28% of households, one member each
    assert families > 0.25  # 20.5% of households, three to four members each


def test_children_share_surnames_addresses_and_close_birth_dates_and_some_are_twins() -> None:
    data = population()
    by_household: defaultdict[int, list[int]] = defaultdict(list)
    for index, household in enumerate(data.member_household):
        by_household[household].append(index)
    twins = close = 0
    for members in by_household.values():
        births = Counter(data.members[m]["birth_date"] for m in members)
        twins += sum(1 for count in births.values() if count >= 2)
        years = sorted(int(data.members[m]["birth_date"][:4]) for m in members)
        close += sum(1 for a, b in zip(years, years[1:], strict=False) if 0 < b - a <= 3)
        addresses = {tuple(data.members[m]["address_lines"]) for m in members}
        assert len(addresses) == 1
    assert twins > 10
    assert close > 300


def test_dependents_are_enrolled_under_a_parent_s_or_a_sibling_s_ssn() -> None:
    data = population()
    ssns = Counter(member["ssn"] for member in data.members if member.get("ssn"))
    shared = {ssn for ssn, count in ssns.items() if count > 1}
    carried = [m for m in data.members if m.get("ssn") in shared]
    flagged = [m for m in carried if m.get("ssn_carried")]
    unflagged = [m for m in carried if not m.get("ssn_carried")]
    assert flagged and unflagged  # the subscriber's (the plan can tell), and another's
    labels = Counter(label for ls in data.request_labels for label in ls)
    assert labels["record_ssn:subscriber"] > labels["record_ssn:other_parent"] > 0
    assert labels["record_ssn:sibling"] > 0


def test_never_enrolled_relatives_live_at_a_member_s_address_and_may_carry_its_ssn() -> None:
    data = population()
    member_ssns = {m["ssn"] for m in data.members if m.get("ssn")}
    relatives = [
        j
        for j, labels in enumerate(data.request_labels)
        if any(label.startswith("census_relative:") for label in labels)
    ]
    assert len(relatives) == 150  # half of the 300 non-member requests
    with_member_ssn = 0
    for j in relatives:
        household = data.request_household[j]
        assert household >= 0 and data.truth[j] == -1
        home = [m for m, h in enumerate(data.member_household) if h == household]
        request = data.requests[j]
        if "address_lines" in request and "moved" not in data.request_labels[j]:
            assert any(data.members[m]["address_lines"] == request["address_lines"] for m in home)
        if request.get("ssn") in member_ssns:
            with_member_ssn += 1
    assert with_member_ssn > 0
    kinds = Counter(
        label for j in relatives for label in data.request_labels[j] if "relative:" in label
    )
    assert {"census_relative:spouse", "census_relative:grandparent"} <= set(kinds)


def test_strangers_belong_to_no_household_on_the_plan() -> None:
    data = population()
    strangers = [
        j
        for j, labels in enumerate(data.request_labels)
        if "non_member" in labels
        and not any(label.startswith("census_relative:") for label in labels)
    ]
    assert strangers and all(data.request_household[j] == -1 for j in strangers)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"members": 0}, "members"),
        ({"members": 5, "non_member_share": 1.5}, "non_member_share"),
        ({"members": 5, "requests": -1}, "requests"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_census_set(**kwargs)  # type: ignore[arg-type]
