"""The synthetic payer-migration set of ``bench identity``: deterministic, hard, consistent."""

from __future__ import annotations

from collections import defaultdict

import pytest

from payerbridge.identity.demographics.records import record_from_fhir
from payerbridge.identity.demographics.standardize import Demographics, standard_record
from payerbridge_tools.bench.identity_data import (
    AS_OF,
    IdentitySet,
    Noise,
    Relationship,
    RequestKind,
    generate_identity_set,
)

MEMBERS = 3_000


@pytest.fixture(scope="module")
def data() -> IdentitySet:
    return generate_identity_set(MEMBERS, seed=7, requests=3_000)


def households(data: IdentitySet) -> dict[int, list[int]]:
    found: dict[int, list[int]] = defaultdict(list)
    for i in range(data.member_count):
        found[data.household_of_member(i)].append(i)
    return found


def test_the_same_seed_gives_the_same_set(data: IdentitySet) -> None:
    again = generate_identity_set(MEMBERS, seed=7, requests=3_000)
    assert list(again.iter_member_fields()) == list(data.iter_member_fields())
    assert list(again.iter_request_fields()) == list(data.iter_request_fields())
    assert again.truth == data.truth and again.request_noise == data.request_noise
    other = generate_identity_set(MEMBERS, seed=8, requests=3_000)
    assert list(other.iter_member_fields()) != list(data.iter_member_fields())


def test_sizes_are_as_asked(data: IdentitySet) -> None:
    assert (data.member_count, data.request_count) == (MEMBERS, 3_000)
    assert generate_identity_set(500, seed=1).request_count == 100  # at least 100 by default
    kinds = [RequestKind(k) for k in data.request_kind]
    assert kinds.count(RequestKind.MEMBER) == 2_700
    assert kinds.count(RequestKind.OUTSIDER) == kinds.count(RequestKind.RELATIVE) == 150


def test_households_share_address_surname_phone_and_the_subscribers_id(data: IdentitySet) -> None:
    sizes, landline = [], 0
    for rows in households(data).values():
        people = [data.member_fields(i) for i in rows]
        head = people[0]
        assert Relationship(data.relationship[rows[0]]) is Relationship.SELF
        assert head["member_id"] == head["subscriber_id"]
        for person in people:
            assert person["subscriber_id"] == head["subscriber_id"]
            for shared in ("address_lines", "postal_code"):
                assert person[shared] == head[shared]
        children = [p for i, p in zip(rows, people, strict=True) if data.relationship[i] == 2]
        assert all(child["family"] == head["family"] for child in children)
        for child in children:  # under 14: the household's landline, never a mobile
            if child["birth_date"] > f"{AS_OF.year - 13}-12-31":
                assert child["phone"] == head["phone"]
        landline += sum(person["phone"] == head["phone"] for person in people[1:])
        sizes.append(len(rows))
    assert max(sizes) >= 4 and sum(size > 1 for size in sizes) > len(sizes) / 3
    assert landline > (len(data.members) - len(sizes)) / 2  # most dependents share it


def test_member_ids_and_ssns_are_unique_except_carried_ones(data: IdentitySet) -> None:
    fields = list(data.iter_member_fields())
    assert len({f["member_id"] for f in fields}) == len(fields)
    own = [f["ssn"] for f in fields if "ssn" in f and not f.get("ssn_carried")]
    assert len(set(own)) == len(own)


def test_there_are_twins_juniors_and_dependents_carrying_the_heads_ssn(data: IdentitySet) -> None:
    twins = juniors = carried = 0
    for rows in households(data).values():
        people = [(data.relationship[i], data.member_fields(i)) for i in rows]
        head = people[0][1]
        children = [p for relationship, p in people if relationship == Relationship.CHILD]
        for a in children:
            for b in children:
                if a is not b and a["birth_date"] == b["birth_date"]:
                    assert a["family"] == b["family"]
                    assert standard_record(Demographics(given=a["given"])).first_name_roots != (
                        standard_record(Demographics(given=b["given"])).first_name_roots
                    )
                    twins += 1
        juniors += any(
            p.get("suffixes") == ["Jr"] and p["given"] == head["given"] for p in children
        ) and head.get("suffixes") == ["Sr"]
        for relationship, person in people:
            if person.get("ssn_carried"):
                assert relationship != Relationship.SELF and person["ssn"] == head["ssn"]
                carried += 1
    assert twins >= 10 and juniors >= 3 and carried >= 20


def test_ground_truth_names_the_member_each_request_is_about(data: IdentitySet) -> None:
    for j in range(data.request_count):
        kind, truth = RequestKind(data.request_kind[j]), data.truth[j]
        assert (truth >= 0) == (kind is RequestKind.MEMBER)
        request = data.request_fields(j)
        if kind is RequestKind.OUTSIDER:
            assert data.household_of_request(j) == -1
            assert not request.get("member_id", "ZX").startswith("PB")
            continue
        if kind is RequestKind.RELATIVE:
            assert data.household_of_request(j) >= 0
            continue
        member, noise = data.member_fields(truth), Noise(data.request_noise[j])
        assert data.household_of_request(j) == data.household_of_member(truth)
        assert data.truth_of(j) == data.member_id(truth)
        if not noise & (Noise.NICKNAME | Noise.GIVEN_TYPO):
            assert request["given"] == member["given"]
        if not noise & (Noise.BIRTH_SWAP | Noise.BIRTH_TYPO):
            assert request["birth_date"] == member["birth_date"]
        if not noise & (Noise.FAMILY_TYPO | Noise.MARRIED | Noise.HYPHENATED):
            assert request["family"] == member["family"]
        if not noise & Noise.MOVED:
            assert request["address_lines"] == member["address_lines"]
        if noise & Noise.NO_MEMBER_ID:
            assert "member_id" not in request
        elif noise & Noise.SUBSCRIBERS_CARD:
            assert request["member_id"] == member["subscriber_id"] != member["member_id"]
        elif not noise & Noise.MEMBER_ID_TYPO:
            assert request["member_id"] == member["member_id"]
        assert "ssn_carried" not in request


def test_requests_carry_every_kind_of_noise(data: IdentitySet) -> None:
    seen = Noise.NONE
    for noise in data.request_noise:
        seen |= Noise(noise)
    assert seen == Noise(sum(Noise))  # every flag
    swapped = [j for j in range(data.request_count) if data.request_noise[j] & Noise.BIRTH_SWAP]
    for j in swapped:
        year, month, day = data.request_fields(j)["birth_date"].split("-")
        assert data.member_fields(data.truth[j])["birth_date"] == f"{year}-{day}-{month}"


def test_relatives_are_never_a_member_of_their_household(data: IdentitySet) -> None:
    """A relative's request must be told apart by name or birth date, or the truth is moot."""
    by_household = households(data)
    for j in range(data.request_count):
        if data.request_kind[j] != RequestKind.RELATIVE:
            continue
        request = standard_record(Demographics(**data.request_fields(j)))
        for i in by_household[data.household_of_request(j)]:
            member = standard_record(Demographics(**data.member_fields(i)))
            assert not (
                set(request.first_name_roots) & set(member.first_name_roots)
                and request.birth_date == member.birth_date
            )


def test_fhir_resources_standardise_like_the_fields(data: IdentitySet) -> None:
    for i in range(0, data.member_count, 97):
        patient, coverage = data.member_resources(i)
        head = data.members.household[i]
        head_ssn = next(
            data.member_fields(k).get("ssn")
            for k in range(data.member_count)
            if data.household_of_member(k) == head
        )
        record = record_from_fhir(patient, coverage, subscriber_ssn=head_ssn)
        assert record == standard_record(Demographics(**data.member_fields(i)))
        assert coverage["beneficiary"]["reference"] == f"Patient/{data.member_id(i)}"
    for j in range(0, data.request_count, 97):
        patient, coverage = data.request_resources(j)
        record = record_from_fhir(patient, coverage, member_id_from_patient=False)
        assert record == standard_record(Demographics(**data.request_fields(j)))


def test_a_small_population_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 10 members"):
        generate_identity_set(5)
