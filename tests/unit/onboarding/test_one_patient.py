"""An onboarding's export kept under each member's one Patient at the plan (ADR 0054), as
an exchange's answer is: the choice per member over generated plan Patients, every
reference re-pointed, the old payer's Patient kept as a source record, and the same ids
and compartment an exchange of the member gives."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.exchange.ports import HeldFor
from payerbridge.exchange.received.merge import MemberFacts, member_patient_id
from payerbridge.exchange.received.normalize import Receipt as BundleReceipt
from payerbridge.exchange.received.normalize import normalize_everything_bundle
from payerbridge.exchange.received.reconcile import Holder
from payerbridge.fhir.codes import RECORD_ROLE, V2_0203
from payerbridge.fhir.resources import (
    compartment_patient,
    is_member_record,
    is_source_record,
    iter_references,
)
from payerbridge.onboarding.importing import ExportMember, Receipt, normalize_export
from payerbridge.onboarding.one_patient import (
    ImportedMember,
    member_facts,
    under_one_patients,
)
from payerbridge.routing.model import Organization
from payerbridge.types import ExchangeId, PartnerId
from tests.builders import a_patient

US = Organization("New Plan", "1234567893", "https://new.example/fhir")
OLD = Organization("Old Plan", "1245319599", "https://old.example/fhir")
CLIENT = "plan-client"
BIRTH, OTHER_BIRTH = "1980-02-03", "1981-05-06"


@dataclass
class PlanPatients:
    """The received store as one-Patient reads it: the plan's own Patients by the member
    id they carry; no other source holds anything of the members."""

    by_member: Mapping[str, list[dict[str, Any]]]
    asked: list[str] = field(default_factory=list)

    def plan_patients(self, member_id: str) -> list[dict[str, Any]]:
        self.asked.append(member_id)
        return list(self.by_member.get(member_id, []))

    def source_patients(
        self, patient_ids: Sequence[str], *, other_than: HeldFor
    ) -> list[tuple[str, dict[str, Any]]]:
        return []


def plan_patient(pid: str, member_id: str, birth: str, gender: str = "female") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [
            {"type": {"coding": [{"system": V2_0203, "code": "MB"}]}, "value": member_id}
        ],
        "birthDate": birth,
        "gender": gender,
    }


def member_records(old_id: str) -> list[dict[str, Any]]:
    """One member's record at the old payer: its Patient, a Condition and a Coverage."""
    return [
        a_patient(old_id, member_id=f"OLD-{old_id}"),
        {
            "resourceType": "Condition",
            "id": f"{old_id}-c",
            "subject": {"reference": f"Patient/{old_id}"},
            "recorder": {"reference": "Practitioner/doc"},
        },
        {
            "resourceType": "Coverage",
            "id": f"{old_id}-cov",
            "beneficiary": {"reference": f"Patient/{old_id}"},
            "subscriber": {"reference": f"Patient/{old_id}"},
        },
    ]


def exported(members: Sequence[ImportedMember]) -> Any:
    ids = count()
    resources = [r for m in members for r in member_records(m.old_patient)]
    resources.append({"resourceType": "Practitioner", "id": "doc"})
    return normalize_export(
        resources,
        members={m.old_patient: ExportMember(m.position, m.holder) for m in members},
        shared=Holder(CLIENT, "", OLD.npi),
        receipt=Receipt(
            "run-1", datetime(2027, 1, 2, tzinfo=UTC), US, OLD, lambda: f"r{next(ids)}"
        ),
    )


def imported(position: int, birth: str = BIRTH, gender: str | None = "female") -> ImportedMember:
    member_id = f"N-{position}"
    return ImportedMember(
        position,
        Holder(CLIENT, member_id, OLD.npi),
        MemberFacts(member_id, birth, gender),
        f"old{position}",
    )


# Per member: how many of the plan's Patients carry its member id, and how many of them
# agree with what the plan said of it (birth date).
_plans = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 3)).map(lambda t: (t[0], min(t[0], t[1]))),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(plans=_plans)
def test_each_member_lands_under_its_one_patient_chosen_as_an_exchange_chooses(
    plans: list[tuple[int, int]],
) -> None:
    members = [imported(n) for n in range(len(plans))]
    found: dict[str, list[dict[str, Any]]] = {}
    for member, (carrying, agreeing) in zip(members, plans, strict=True):
        found[member.facts.member_id] = [
            plan_patient(
                f"plan{member.position}-{k}",
                member.facts.member_id,
                BIRTH if k < agreeing else OTHER_BIRTH,
            )
            for k in range(carrying)
        ]
    export = exported(members)
    kept, chosen = under_one_patients(
        PlanPatients(found),
        US,
        export,
        members,
        PartnerId("oldplan"),
    )
    for member, (carrying, agreeing) in zip(members, plans, strict=True):
        outcome = chosen[member.position]
        derived = f"Patient/{member_patient_id(member.holder, ())[0]}"
        if agreeing == 1:  # exactly one of the plan's Patients carries the id and agrees
            assert (outcome.how, outcome.patient) == ("plan", f"Patient/plan{member.position}-0")
        else:  # none, two that agree, or only another person: ours, never one of the plan's
            assert outcome.patient == derived
            if not carrying:
                assert outcome.how == "derived-none"
            else:
                assert outcome.how == ("derived-ambiguous" if agreeing else "derived-mismatch")
        one = outcome.patient.split("/", 1)[1]
        source = member.source_patient_id
        share = [(r, c) for r, c in kept if c == one]
        source_patients = [
            r for r, _ in share if r["resourceType"] == "Patient" and r["id"] == source
        ]
        assert len(source_patients) == 1 and is_source_record(source_patients[0])
        assert source_patients[0]["link"] == [
            {"other": {"reference": outcome.patient}, "type": "seealso"}
        ]
        ours = [r for r, _ in share if is_member_record(r)]
        assert len(ours) == (0 if outcome.how == "plan" else 1)
        for resource, _ in share:
            if resource["resourceType"] in ("Condition", "Coverage"):
                assert compartment_patient(resource) == one
                refs = set(iter_references(resource))
                assert f"Patient/{source}" not in refs
    # Nothing of a member lands outside its one Patient's compartment but shared data.
    ones = {o.patient.split("/", 1)[1] for o in chosen.values()}
    assert {c for _, c in kept} <= ones | {None}
    assert all(r["resourceType"] == "Practitioner" for r, c in kept if c is None)


def test_a_plan_patient_of_another_gender_or_birth_date_is_never_chosen() -> None:
    member = imported(0, gender="male")
    found = {
        "N-0": [
            plan_patient("sister", "N-0", BIRTH, "female"),  # the same card, another person
            plan_patient("newborn", "N-0", OTHER_BIRTH, "male"),
        ]
    }
    _, chosen = under_one_patients(
        PlanPatients(found),
        US,
        exported([member]),
        [member],
        PartnerId("oldplan"),
    )
    assert chosen[0].how == "derived-mismatch"
    assert chosen[0].patient == f"Patient/{member_patient_id(member.holder, ())[0]}"


def test_a_member_nothing_came_for_is_not_asked_about_nor_given_a_patient() -> None:
    came, nothing = imported(0), imported(1)
    store = PlanPatients({})
    kept, chosen = under_one_patients(
        store,
        US,
        exported([came]),
        [came, nothing],
        PartnerId("oldplan"),
    )
    assert set(chosen) == {0} and store.asked == ["N-0"]
    assert sum(1 for r, _ in kept if is_member_record(r)) == 1


def test_the_plans_patient_and_the_sources_differences_are_reported_without_values() -> None:
    member = imported(0)
    plan = plan_patient("plan-ana", "N-0", BIRTH) | {"address": [{"city": "Akron"}]}
    _, chosen = under_one_patients(
        PlanPatients({"N-0": [plan]}),
        US,
        exported([member]),
        [member],
        PartnerId("oldplan"),
    )
    outcome = chosen[0].to_json()
    assert outcome["patient"] == "Patient/plan-ana" and outcome["how"] == "plan"
    fields = {d["field"]: d for d in outcome["differences"]}
    assert fields["address"]["sources"] == ["oldplan", "plan"]
    assert not fields["address"]["identity"]
    assert "Akron" not in str(outcome)


def test_an_exchange_and_an_onboarding_of_the_member_keep_the_same_ids_in_one_compartment() -> None:
    """A later exchange of the member from the same old payer updates what the onboarding
    stored in place: the same ids, under the same one Patient."""
    member = imported(0)
    store = PlanPatients({})
    kept, chosen = under_one_patients(
        store,
        US,
        exported([member]),
        [member],
        PartnerId("oldplan"),
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in member_records(member.old_patient)],
    }
    answer = normalize_everything_bundle(
        bundle,
        BundleReceipt(member.holder, OLD, US, datetime(2027, 2, 1, tzinfo=UTC), ExchangeId("x1")),
    )
    assert answer.patient_id == member.source_patient_id
    onboarded = {
        f"{r['resourceType']}/{r['id']}" for r, _ in kept if r["resourceType"] != "Provenance"
    }
    exchanged = {
        f"{r['resourceType']}/{r['id']}"
        for r, _ in answer.resources
        if r["resourceType"] not in ("Provenance", "Practitioner")
    }
    assert exchanged <= onboarded
    assert chosen[0].patient == f"Patient/{member_patient_id(member.holder, ())[0]}"
    roles = {
        t["code"]
        for r, _ in kept
        for t in (r.get("meta") or {}).get("tag", [])
        if t.get("system") == RECORD_ROLE
    }
    assert roles == {"member", "source"}


def test_the_facts_are_the_member_patient_the_plan_submitted() -> None:
    bundle = {
        "name": "MemberBundle",
        "part": [
            {"name": "MemberPatient", "resource": a_patient("N-1", birth_date="1990-01-02")},
            {"name": "CoverageToMatch", "resource": {"resourceType": "Coverage"}},
        ],
    }
    assert member_facts("N-1", bundle) == MemberFacts("N-1", "1990-01-02", "female")
    assert member_facts("N-1", {"part": []}) == MemberFacts("N-1", "", None)
