"""One Patient per member: re-pointing and demographic differences (pure, generated)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from payerbridge.exchange.received.merge import (
    demographic_differences,
    member_patient_id,
    repoint,
    source_patient,
)
from payerbridge.exchange.received.reconcile import Holder, stale_refs

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
