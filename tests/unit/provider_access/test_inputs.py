"""Provider Access's inputs read (ADR 0059): what a claim or encounter shows, a roster,
and a provider's attestation. Each refuses what it cannot vouch for: no guessed NPI, no
half-loaded roster, no attestation signed by anyone but the asking provider."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.errors import InvalidInput
from payerbridge.fhir.codes import NPI_SYSTEM
from payerbridge.provider_access.attestation import ATTESTED_DAYS, Attested, verify_attestation
from payerbridge.provider_access.rosters import OPEN_END, roster_from_csv, roster_from_group
from payerbridge.provider_access.treatment import npi_of_provider, service_facts
from payerbridge.types import MemberId

CLINIC, DOCTOR = "1679576722", "1200000101"
NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
TODAY = NOW.date()


def _npi(value: str) -> list[dict[str, str]]:
    return [{"system": NPI_SYSTEM, "value": value}]


def test_a_claim_attributes_every_provider_it_names_with_an_npi_on_each_day_of_service() -> None:
    claim = {
        "resourceType": "ExplanationOfBenefit",
        "status": "active",
        "billablePeriod": {"start": "2026-01-02"},
        "provider": {"reference": "Organization/clinic"},
        "careTeam": [
            {"provider": {"reference": "Practitioner/doc"}},
            {"provider": {"reference": "Practitioner/unknown"}},  # resolves to nothing
        ],
        "facility": {"identifier": {"system": NPI_SYSTEM, "value": "1234567890"}},  # bad digit
        "item": [{"servicedDate": "2026-01-03"}, {"servicedPeriod": {"start": "2026-01-04"}}],
    }
    npis = {"Organization/clinic": CLINIC, "Practitioner/doc": DOCTOR}
    facts = service_facts(claim, MemberId("m"), npis)
    assert {(f.provider_npi, f.served_on.day) for f in facts} == {
        (npi, day) for npi in (CLINIC, DOCTOR) for day in (2, 3, 4)
    }
    assert service_facts({**claim, "status": "entered-in-error"}, MemberId("m"), npis) == []


def test_a_provider_with_two_different_npis_names_none() -> None:
    assert npi_of_provider({"identifier": _npi(CLINIC)}) == CLINIC
    assert npi_of_provider({"identifier": _npi(CLINIC) + _npi(DOCTOR)}) is None
    assert npi_of_provider({"identifier": _npi("123")}) is None


def test_a_csv_roster_names_every_defect_by_line_and_loads_nothing() -> None:
    good = roster_from_csv(f"provider_npi,patient_id,start,end\n{CLINIC},p1,2026-01-01,\n", "r")
    assert [(e.provider_npi, e.member_id, e.end) for e in good] == [(CLINIC, "p1", OPEN_END)]
    text = (
        "provider_npi,patient_id,start,end\n"
        f"{CLINIC},p1,2026-01-01,2025-01-01\n"  # ends before it starts
        "1234,p2,2026-01-01,\n"  # not an NPI
        f"{CLINIC},Patient/p3,2026-01-01,\n"  # not a Patient id
        f"{CLINIC},p4,yesterday,\n"
        f"{CLINIC},p5\n"
    )
    with pytest.raises(InvalidInput) as refused:
        roster_from_csv(text, "r")
    assert [i.text.split(":")[0] for i in refused.value.issues] == [
        f"line {n}" for n in range(2, 7)
    ]
    with pytest.raises(InvalidInput, match="header"):
        roster_from_csv("npi,patient\n", "r")


def test_a_group_roster_takes_its_provider_from_the_group_and_skips_inactive_members() -> None:
    group = {
        "resourceType": "Group",
        "identifier": _npi(DOCTOR),
        "member": [
            {"entity": {"reference": "Patient/a"}, "period": {"start": "2026-01-01"}},
            {"entity": {"reference": "Patient/b"}, "inactive": True},
        ],
    }
    assert [(e.provider_npi, e.member_id) for e in roster_from_group(group, "g")] == [(DOCTOR, "a")]
    with pytest.raises(InvalidInput, match="names no provider"):
        roster_from_group({**group, "identifier": _npi(DOCTOR) + _npi(CLINIC)}, "g")


def _attestation(**changes: Any) -> dict[str, Any]:
    consent: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "dateTime": "2026-06-01",
        "performer": [{"identifier": {"system": NPI_SYSTEM, "value": CLINIC}}],
        "provision": {"period": {"start": "2026-05-01"}},
    }
    consent.update(changes)
    return consent


def test_a_verified_attestation_attributes_from_today_for_a_bounded_time() -> None:
    assert verify_attestation(_attestation(), CLINIC, NOW, TODAY) == Attested(
        TODAY, TODAY + timedelta(days=ATTESTED_DAYS)
    )
    ending = _attestation(provision={"period": {"start": "2026-05-01", "end": "2026-07-01"}})
    assert verify_attestation(ending, CLINIC, NOW, TODAY) == Attested(TODAY, date(2026, 7, 1))


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "inactive"},
        {"scope": {"coding": [{"code": "treatment"}]}},
        {"performer": [{"identifier": {"system": NPI_SYSTEM, "value": DOCTOR}}]},
        {"performer": []},
        {"dateTime": "2026-07-01"},  # dated in the future
        {"dateTime": None},
        {"provision": {"period": {"end": "2026-06-01"}}},  # over
        {"provision": {"period": {"start": "2026-07-01"}}},  # not begun
    ],
)
def test_an_attestation_that_cannot_be_vouched_for_is_not_verified(changes: dict[str, Any]) -> None:
    assert isinstance(verify_attestation(_attestation(**changes), CLINIC, NOW, TODAY), str)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([CLINIC, DOCTOR, "1234567893", ""]), max_size=3))
def test_only_the_asking_providers_own_signature_verifies(signers: list[str]) -> None:
    consent = _attestation(
        performer=[{"identifier": {"system": NPI_SYSTEM, "value": s}} for s in signers]
    )
    verified = not isinstance(verify_attestation(consent, CLINIC, NOW, TODAY), str)
    assert verified == (bool(signers) and set(signers) == {CLINIC})
