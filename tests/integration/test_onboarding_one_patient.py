"""Onboardings keep each member's records under the member's one Patient at the plan
(ADR 0054), against the database: a member whose card the plan holds for another person
(another birth date) gets ours, never the plan's; the same member onboarded from a second
old payer lands in the same compartment, both old payers' Patients kept as sources and
compared, what they say differently reported by field and source, never by value."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from payerbridge.api.routers.onboardings import onboarding_report
from payerbridge.api.schemas import onboarding_requests
from payerbridge.bootstrap import Platform
from payerbridge.fhir.codes import V2_0203
from payerbridge.fhir.resources import is_member_record, is_source_record
from payerbridge.onboarding.model import NewOnboarding, Onboarding, OnboardingMember
from payerbridge.onboarding.service import accept_onboarding, proceed
from payerbridge.onboarding.unit import OnboardingUnit
from payerbridge.routing.enrolment import StorePartner, store_partner
from payerbridge.routing.model import Partner
from payerbridge.store.members import opened_resource
from payerbridge.store.tables import fhir_resources
from payerbridge.types import ClientId, OnboardingId, PartnerId
from tests.integration.test_onboarding_since import MEMBERS, OldPayer, platform

__all__ = ["platform"]  # the fixture, shared

SECOND = Partner(PartnerId("second"), "Second Plan", "1679576722", "http://second.example/fhir")


class MovedOldPayer(OldPayer):
    """A second old payer that holds Ana with an address (she moved), and Bea born
    another day than the first says (maybe another person)."""

    def __init__(self) -> None:
        super().__init__()
        self.records[0] = {**self.records[0], "address": [{"city": "Elsewhere"}]}
        self.records[1] = {**self.records[1], "birthDate": "1990-07-15"}


def _run(uow: OnboardingUnit, run_id: str, partner: PartnerId) -> list[OnboardingMember]:
    run = accept_onboarding(
        NewOnboarding(
            OnboardingId(run_id),
            partner,
            onboarding_requests(partner, MEMBERS),
            client_id=ClientId("ops"),
            request_id=None,
        ),
        uow,
    )
    for _ in range(20):
        if proceed(run.id, uow).done:
            break
    ended: Onboarding | None = uow.onboardings.get(run.id)
    assert ended is not None and ended.status.value == "completed", ended
    return uow.onboardings.members(run.id)


def _plan_holds_bea_s_card_for_another_person(platform: Platform, tmp_path: Path) -> None:
    """The plan's own Patient with Bea's member id (typed MB), born another day."""
    patient = {
        "resourceType": "Patient",
        "id": "plan-newborn",
        "identifier": [{"type": {"coding": [{"system": V2_0203, "code": "MB"}]}, "value": "N-BEA"}],
        "birthDate": "2026-10-01",
        "gender": "female",
    }
    path = tmp_path / "plan.ndjson"
    path.write_bytes(orjson.dumps(patient))
    platform.import_member_files([path], progress=lambda _path, _size: None)


def _compartment(platform: Platform, patient_id: str) -> list[dict[str, Any]]:
    with platform.engine.connect() as connection:
        rows = connection.execute(
            select(fhir_resources.c.ref, fhir_resources.c.body).where(
                fhir_resources.c.patient_id == patient_id
            )
        ).all()
    return [opened_resource(platform.engine, row.ref, row.body) for row in rows]


def test_a_member_onboarded_from_two_old_payers_is_one_patient_with_both_sources(
    platform: Platform, tmp_path: Path
) -> None:
    _plan_holds_bea_s_card_for_another_person(platform, tmp_path)
    uow = dataclasses.replace(platform.units.onboarding(), bulk=OldPayer())
    first = _run(uow, "run-1", PartnerId("old"))
    chosen = {m.member_id: m.member_patient for m in first}
    assert chosen["N-ANA"] is not None and chosen["N-ANA"].how == "derived-none"
    assert chosen["N-BEA"] is not None and chosen["N-BEA"].how == "derived-mismatch"
    assert chosen["N-BEA"].patient != "Patient/plan-newborn"  # another person: never hers

    store_partner(StorePartner(SECOND, "test"), platform.units.partners())
    uow = dataclasses.replace(platform.units.onboarding(), bulk=MovedOldPayer())
    second = _run(uow, "run-2", SECOND.id)
    again = {m.member_id: m.member_patient for m in second}
    assert again["N-ANA"] is not None and again["N-BEA"] is not None
    # The same one Patient whichever old payer: it derives from the member, not the payer.
    assert again["N-ANA"].patient == chosen["N-ANA"].patient
    assert again["N-BEA"].patient == chosen["N-BEA"].patient
    differences = {d["field"]: d for d in again["N-ANA"].differences}
    assert differences["address"]["sources"] == ["old", "second"]
    assert not differences["address"]["identity"]
    assert "Elsewhere" not in orjson.dumps(again["N-ANA"].to_json()).decode()
    assert "address" not in {d["field"] for d in again["N-BEA"].differences}
    bea = {d["field"]: d for d in again["N-BEA"].differences}
    assert bea["birthDate"]["identity"] and bea["birthDate"]["sources"] == ["old", "second"]
    # The run says how many members a person should look at (Bea), never whose values.
    run = uow.onboardings.get(OnboardingId("run-2"))
    assert run is not None
    report = onboarding_report(uow, run)
    assert report["identity_differences"] == 1
    assert "1990-07-15" not in orjson.dumps(report).decode()

    ana = _compartment(platform, chosen["N-ANA"].patient.split("/", 1)[1])
    patients = [r for r in ana if r["resourceType"] == "Patient"]
    assert sorted(is_member_record(p) for p in patients) == [False, False, True]
    sources = [p for p in patients if is_source_record(p)]
    assert len(sources) == 2
    assert all(
        p["link"] == [{"other": {"reference": chosen["N-ANA"].patient}, "type": "seealso"}]
        for p in sources
    )
    conditions = [r for r in ana if r["resourceType"] == "Condition"]
    assert len(conditions) == 2  # her asthma, from each old payer, under its own id
    assert {c["subject"]["reference"] for c in conditions} == {chosen["N-ANA"].patient}
