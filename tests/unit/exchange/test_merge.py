"""One Patient per member: re-pointing and demographic differences (pure, generated)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from payerbridge.exchange.received.merge import (
    MemberFacts,
    choose_member_patient,
    demographic_differences,
    identity_conflicts,
    member_patient_id,
    member_record,
    merged,
    repoint,
    source_patient,
)
from payerbridge.exchange.received.normalize import NormalizedBundle
from payerbridge.exchange.received.reconcile import Holder, stale_refs
from payerbridge.fhir.codes import V2_0203
from payerbridge.fhir.resources import compartment_patient, is_member_record

_ids = st.text(alphabet="abc123", min_size=1, max_size=4)
_npis = st.lists(st.from_regex(r"1[0-9]{9}", fullmatch=True), min_size=1, max_size=4, unique=True)


def _records(holder: Holder, old_ids: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """A source's Patient (our id) and resources referencing it by every usual element."""
    patient_id = holder.our_id("Patient/p")
    resources: list[dict[str, Any]] = [{"resourceType": "Patient", "id": patient_id}]
    for old in old_ids:
        resources.append(
            {
                "resourceType": "Observation",
                "id": holder.our_id(f"Observation/{old}"),
                "subject": {"reference": f"Patient/{patient_id}"},
                "performer": [{"reference": "Practitioner/x"}],
            }
        )
        resources.append(
            {
                "resourceType": "Coverage",
                "id": holder.our_id(f"Coverage/{old}"),
                "beneficiary": {"reference": f"Patient/{patient_id}"},
            }
        )
    return patient_id, resources


@given(
    member=_ids,
    npis=_npis,
    old_ids=st.lists(_ids, max_size=4),
    plan=st.lists(_ids, max_size=2, unique=True),
)
def test_every_source_reference_lands_on_the_one_patient(
    member: str, npis: list[str], old_ids: list[str], plan: list[str]
) -> None:
    holders = [Holder("client", member, npi) for npi in npis]
    ids = {member_patient_id(h, plan)[0] for h in holders}
    assert len(ids) == 1  # the old payer never enters the one Patient's id
    (one,) = ids
    sources = [_records(h, old_ids) for h in holders]
    source_ids = frozenset(p for p, _ in sources)
    for _, resources in sources:
        for resource in resources:
            moved = repoint(resource, source_ids, one)
            if resource["resourceType"] == "Patient":
                assert moved == resource
                continue
            ref = (moved.get("subject") or moved.get("beneficiary"))["reference"]
            assert ref == f"Patient/{one}"
            assert moved["id"] == resource["id"]  # our ADR 0029 id and its upsert stay


@given(a=_ids, b=_ids, npi=_npis)
def test_two_members_never_share_a_patient(a: str, b: str, npi: list[str]) -> None:
    # Same old payer, same old-payer ids, any demographics: different members stay apart.
    if a == b:
        return
    one_a, _ = member_patient_id(Holder("client", a, npi[0]), [])
    one_b, _ = member_patient_id(Holder("client", b, npi[0]), [])
    assert one_a != one_b
    pa, ra = _records(Holder("client", a, npi[0]), ["1"])
    pb, _ = _records(Holder("client", b, npi[0]), ["1"])
    assert pa != pb
    for resource in ra:
        moved = repoint(resource, frozenset({pa}), one_a)
        assert f"Patient/{one_b}" not in str(moved)
        assert f"Patient/{pb}" not in str(moved)


@given(plan=st.lists(_ids, min_size=2, max_size=3, unique=True), member=_ids)
def test_ambiguous_plan_patients_fail_closed(plan: list[str], member: str) -> None:
    one, how = member_patient_id(Holder("client", member, "1234567890"), plan)
    assert how == "derived-ambiguous"
    assert one not in plan
    assert member_patient_id(Holder("client", member, "1"), plan[:1]) == (plan[0], "plan")


@given(npis=_npis, old_ids=st.lists(_ids, min_size=1, max_size=4, unique=True))
def test_removal_never_touches_another_source(npis: list[str], old_ids: list[str]) -> None:
    holders = [Holder("client", "m", npi) for npi in npis]
    held = {h.old_payer_npi: {r["id"] for r in _records(h, old_ids)[1]} for h in holders}
    first = holders[0]
    kept = {r["id"] for r in _records(first, old_ids[1:])[1]}
    removed = set(stale_refs(held[first.old_payer_npi], kept, complete=True))
    others = set().union(*(v for k, v in held.items() if k != first.old_payer_npi))
    assert removed and not removed & others


def test_source_patient_links_seealso() -> None:
    kept = source_patient({"resourceType": "Patient", "id": "s"}, "one")
    assert kept["link"] == [{"other": {"reference": "Patient/one"}, "type": "seealso"}]


def test_differences_name_paths_and_sources_never_values() -> None:
    a = {"address": [{"city": "Springfield"}], "birthDate": "1970-01-01"}
    b = {"address": [{"city": "Shelbyville"}], "birthDate": "1970-01-01"}
    found = demographic_differences([("1111111111", a), ("2222222222", b), ("plan", a)])
    assert [d.field for d in found] == ["address"]
    (d,) = found
    assert d.paths == ("address[0].city",)
    assert d.sources == ("1111111111", "2222222222", "plan")
    assert not d.is_identity
    assert "Springfield" not in str(d.to_json()) and "Shelbyville" not in str(d.to_json())
    born = demographic_differences([("1", {"birthDate": "1970"}), ("2", {"birthDate": "1971"})])
    assert born[0].is_identity


_dates = st.sampled_from(["2024-03-01", "2019-07-15", "1980-01-31"])
_genders = st.sampled_from(["female", "male", "unknown", None])


def _plan_patient(pid: str, member_id: str, born: str, gender: str | None) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "birthDate": born,
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "MB"}]},
                "system": "https://plan/member-id",
                "value": member_id,
            }
        ],
    }
    if gender is not None:
        patient["gender"] = gender
    return patient


@given(
    family=st.lists(st.tuples(_dates, _genders), min_size=0, max_size=4),
    born=_dates,
    gender=_genders,
)
def test_the_plan_patient_is_chosen_only_when_exactly_one_is_the_member(
    family: list[tuple[str, str | None]], born: str, gender: str | None
) -> None:
    """A family on one card (the same member id on every Patient, a newborn on her
    sister's): the plan's Patient is chosen only when exactly one agrees with what the
    plan said of its member; every other case keeps the data apart under ours."""
    holder = Holder("client", "M1", "1234567893")
    found = [_plan_patient(f"p{n}", "M1", b, g) for n, (b, g) in enumerate(family)]
    choice = choose_member_patient(holder, MemberFacts("M1", born, gender), found)
    known = {"female", "male"}

    def agrees(b: str, g: str | None) -> bool:
        return b == born and (g not in known or gender not in known or g == gender)

    agreeing = [f"p{n}" for n, (b, g) in enumerate(family) if agrees(b, g)]
    if len(agreeing) == 1:
        assert (choice.patient_id, choice.how) == (agreeing[0], "plan")
    else:
        assert choice.patient_id == member_patient_id(holder, ())[0]
        assert choice.patient_id not in {p["id"] for p in found}
        expected = "derived-ambiguous" if agreeing else "derived-mismatch"
        assert choice.how == (expected if family else "derived-none")


def test_a_patient_with_the_member_id_untyped_or_of_another_value_is_not_the_member() -> None:
    holder = Holder("client", "M1", "1234567893")
    untyped = {**_plan_patient("p1", "M1", "2024-03-01", None), "identifier": [{"value": "M1"}]}
    other = _plan_patient("p2", "M10", "2024-03-01", None)
    choice = choose_member_patient(holder, MemberFacts("M1", "2024-03-01", None), [untyped, other])
    assert choice.how == "derived-none"


def test_merged_keeps_provenance_targets_and_links_the_source_patient() -> None:
    holder = Holder("client", "M1", "1234567893")
    facts = MemberFacts("M1", "2024-03-01", "female")
    choice = choose_member_patient(holder, facts, [])
    record = member_record(choice, facts, "https://us/NamingSystem/member-id")
    # What the plan said of its member: how its FHIR server finds her (delivery.bundle).
    assert (record["birthDate"], record["gender"]) == ("2024-03-01", "female")
    assert member_record(choice, MemberFacts("M1", "2024-03-01", None), None).get("gender") is None
    source = holder.our_id("Patient/p")
    resources = [
        {"resourceType": "Patient", "id": source},
        {"resourceType": "Coverage", "id": "c", "beneficiary": {"reference": f"Patient/{source}"}},
        {"resourceType": "Provenance", "id": "v", "target": [{"reference": f"Patient/{source}"}]},
    ]
    normalized = NormalizedBundle(
        [(r, compartment_patient(r)) for r in resources], source, Counter(), Counter(), 0
    )
    kept = merged(normalized, choice, record)
    one = choice.patient_id
    assert {c for _, c in kept.resources} == {one}  # one compartment
    by_type = {r["resourceType"]: r for r, _ in kept.resources[:3]}
    assert by_type["Coverage"]["beneficiary"] == {"reference": f"Patient/{one}"}
    assert by_type["Provenance"]["target"] == [{"reference": f"Patient/{source}"}]
    assert by_type["Patient"]["link"][0]["other"] == {"reference": f"Patient/{one}"}
    ours = kept.resources[-1][0]
    assert is_member_record(ours) and not is_member_record(by_type["Patient"])
    # The sources' demographics stay with them: ours has only what the plan said.
    assert "name" not in ours and "address" not in ours and "telecom" not in ours
    assert kept.refs == {f"Patient/{source}", "Coverage/c", "Provenance/v", f"Patient/{one}"}


def test_only_birth_date_and_gender_differences_are_conflicts() -> None:
    found = demographic_differences(
        [
            ("a", {"id": "1", "birthDate": "1970-01-01", "telecom": [{"value": "1"}]}),
            ("b", {"id": "2", "birthDate": "1971-01-01", "telecom": [{"value": "2"}]}),
        ]
    )
    (conflict,) = identity_conflicts(found, {"a": "Patient/1", "b": "Patient/2"}, "k" * 40)
    assert conflict.paths == ("birthDate",) and conflict.refs == ("Patient/1", "Patient/2")
    assert conflict.sources == ("a", "b") and conflict.resource_type == "Patient"


def test_a_source_that_says_no_gender_is_not_evidence_of_another_person() -> None:
    found = demographic_differences([("a", {"gender": "female"}), ("b", {})])
    assert [d.field for d in found] == ["gender"] and not found[0].is_identity
    assert identity_conflicts(found, {"a": "Patient/1", "b": "Patient/2"}, "k" * 40) == []
