"""record_from_fhir: FHIR Patient and Coverage JSON in, StandardRecord out."""

from __future__ import annotations

from datetime import date
from typing import Any

from payerbridge.identity.demographics.records import BIRTH_SEX, US_SSN, record_from_fhir
from payerbridge_tools.population import build_network, generate_payer_population
from tests.builders import a_coverage, a_patient


def _sandbox_member() -> tuple[dict[str, Any], dict[str, Any]]:
    """The first subscriber of a sandbox payer: their Patient and their Coverage."""
    network = build_network(1)
    resources = generate_payer_population(
        network, network.payers[0], members=6, seed=7, as_of=date(2025, 6, 30), history_years=0
    )
    patient = coverage = None
    for resource in resources:
        if resource["resourceType"] == "Patient" and patient is None:
            patient = resource
        if resource["resourceType"] == "Coverage" and coverage is None:
            coverage = resource
    assert patient is not None and coverage is not None
    return patient, coverage


def test_sandbox_member_is_standardised() -> None:
    patient, coverage = _sandbox_member()
    record = record_from_fhir(patient, coverage)
    assert record.first_name and record.family_name and record.birth_date
    assert record.sex in ("M", "F")
    assert record.member_id == coverage["identifier"][0]["value"].upper()
    assert record.subscriber_id == coverage["subscriberId"].upper()
    assert record.postal_code == patient["address"][0]["postalCode"][:5]
    assert record.phone is not None and record.street is not None


def test_maiden_name_becomes_a_previous_surname() -> None:
    patient = a_patient(family="Jones")
    patient["name"].append({"use": "maiden", "family": "Smith", "given": ["Ana"]})
    patient["name"].insert(
        0, {"use": "old", "family": "Brown", "given": ["Ana"], "period": {"end": "2001-01-01"}}
    )
    record = record_from_fhir(patient)
    assert record.family_name == "jones"
    assert record.family_name_tokens == {"jones", "smith", "brown"}


def test_official_name_wins_over_usual_and_suffix_is_read() -> None:
    patient = a_patient(given="Robert", family="Smith")
    patient["name"] = [
        {"use": "usual", "family": "Smith", "given": ["Bob"]},
        {"use": "official", "family": "Smith", "given": ["Robert"], "suffix": ["Jr."]},
    ]
    record = record_from_fhir(patient)
    assert (record.first_name, record.suffix) == ("robert", "JR")


def test_birth_sex_extension_when_gender_is_absent() -> None:
    patient = a_patient()
    del patient["gender"]
    patient["extension"] = [{"url": BIRTH_SEX, "valueCode": "F"}]
    assert record_from_fhir(patient).sex == "F"
    assert record_from_fhir({**patient, "gender": "unknown"}).sex == "F"
    assert record_from_fhir({**patient, "gender": "male"}).sex == "M"


def test_coverage_member_id_wins_over_patient_member_id() -> None:
    patient = a_patient(member_id="PATIENT-MB")
    assert record_from_fhir(patient).member_id == "PATIENTMB"
    assert record_from_fhir(patient, a_coverage(member_id="COV-1")).member_id == "COV1"
    assert record_from_fhir(patient, a_coverage(member_id=None)).member_id == "PATIENTMB"
    # In a request, the MemberPatient's ids are the requesting payer's, not ours.
    request = record_from_fhir(patient, a_coverage(member_id=None), member_id_from_patient=False)
    assert request.member_id is None and request.subscriber_id == "S1"


def test_ssn_from_patient_identifier_and_carried_for_dependents() -> None:
    patient = a_patient(member_id=None)
    patient["identifier"] = [{"system": US_SSN, "value": "123-45-6780"}]
    child = a_coverage()
    child["relationship"] = {"coding": [{"code": "child"}]}
    own = a_coverage()
    own["relationship"] = {"coding": [{"code": "self"}]}
    assert record_from_fhir(patient).ssn == "123456780"
    assert record_from_fhir(patient, child, subscriber_ssn="123456780").ssn_carried
    assert not record_from_fhir(patient, own, subscriber_ssn="123456780").ssn_carried
    assert not record_from_fhir(patient, child, subscriber_ssn="123456781").ssn_carried


def test_home_address_and_phone_are_preferred() -> None:
    patient = a_patient()
    patient["address"] = [
        {"use": "work", "line": ["1 Office Park"], "postalCode": "10001"},
        {
            "use": "home",
            "line": ["9 Elm Street"],
            "postalCode": "62701-1234",
            "period": {"start": "2020-01-01"},
        },
        {"use": "home", "line": ["5 Old Road"], "postalCode": "99501", "period": {"end": "2019"}},
    ]
    patient["telecom"] = [
        {"system": "email", "value": "x@example.org"},
        {"system": "phone", "use": "work", "value": "312-555-0000"},
        {"system": "phone", "use": "mobile", "value": "312-555-0101"},
    ]
    record = record_from_fhir(patient)
    assert (record.house_number, record.street, record.postal_code) == ("9", "ELM ST", "62701")
    assert record.phone == "3125550101"


def test_malformed_values_are_missing_not_errors() -> None:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "name": "Ana",
        "birthDate": 1980,
        "gender": ["female"],
        "address": [{"line": "1 Main"}],
        "telecom": None,
        "identifier": [{"type": "MB"}],
    }
    record = record_from_fhir(patient, {"subscriberId": 42, "identifier": "x"})
    assert record.first_name is None and record.birth_date is None and record.sex is None
    assert record.street is None and record.member_id is None and record.subscriber_id is None
