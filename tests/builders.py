"""Small builders of FHIR resources and exchange requests for tests (synthetic data only)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

MB = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]}


def a_patient(
    pid: str = "p1",
    *,
    family: str = "Garcia",
    given: str = "Ana",
    birth_date: str = "1980-02-03",
    gender: str = "female",
    member_id: str | None = "M123",
) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth_date,
        "gender": gender,
    }
    if member_id:
        patient["identifier"] = [
            {"type": MB, "system": "http://old.example/mb", "value": member_id}
        ]
    return patient


def a_coverage(
    cid: str = "c1",
    *,
    patient: str = "p1",
    member_id: str | None = "M123",
    subscriber_id: str = "S1",
) -> dict[str, Any]:
    coverage: dict[str, Any] = {
        "resourceType": "Coverage",
        "id": cid,
        "status": "active",
        "subscriberId": subscriber_id,
        "beneficiary": {"reference": f"Patient/{patient}"},
        "payor": [{"reference": "Organization/org1"}],
    }
    if member_id:
        coverage["identifier"] = [
            {"type": MB, "system": "http://old.example/mb", "value": member_id}
        ]
    return coverage


def an_exchange_request(old_payer: str = "old-plan", **member: Any) -> dict[str, Any]:
    return {
        "old_payer": old_payer,
        "member": {
            "given": ["Ana"],
            "family": "Garcia",
            "birth_date": "1980-02-03",
            "gender": "female",
            **member,
        },
        "old_coverage": {"member_id": "M123", "subscriber_id": "S1", "relationship": "self"},
        "new_coverage": {"member_id": "N1", "relationship": "self", "start": "2026-12-01"},
        "consent": {
            "policy": "sensitive",
            "start": "2026-01-01",
            "end": "2099-01-01",
            "source_reference": "DocumentReference/optin-1",
        },
    }


def member_match_parameters(
    request: dict[str, Any] | None = None,
    *,
    our_npi: str = "1234567893",
    partner_npi: str = "1245319599",
    policy: str | None = None,
    start: str | None = None,
    end: str | None = None,
    hrex: str | None = None,
    wellknown: str | None = None,
) -> dict[str, Any]:
    """The $member-match Parameters the new payer (``our_npi``) sends the old payer
    (``partner_npi``), with the opt-in as HRex Consent, exactly as an exchange sends it
    (in the shape of HRex ``hrex``; None: the current one; ``wellknown``: our
    davinci-configuration location, on CoverageToLink)."""
    from datetime import UTC, date, datetime
    from zoneinfo import ZoneInfo

    from payerbridge.api.schemas import ExchangeCreate
    from payerbridge.consent.model import ConsentId
    from payerbridge.exchange.intake.opt_in import OptIn, opt_in_consent
    from payerbridge.fhir.member_match import build_member_match_request
    from payerbridge.routing.model import Organization, Partner
    from payerbridge.types import ClientId, MemberId

    raw = request or an_exchange_request()
    consent = dict(raw["consent"])
    consent.update({k: v for k, v in (("policy", policy), ("start", start), ("end", end)) if v})
    domain = ExchangeCreate.model_validate({**raw, "consent": consent}).to_domain()
    assert domain.consent is not None
    old = Partner("old", "Old", partner_npi, "http://old.example/fhir")
    opt_in = opt_in_consent(
        OptIn(domain.consent, MemberId("N1"), old, ClientId("t")),
        consent_id=ConsentId("c"),
        us=Organization("New", our_npi),
        zone=ZoneInfo("UTC"),
        at=datetime.combine(date(2026, 1, 1), datetime.min.time(), UTC),
    )
    from payerbridge.routing.profiles import PROFILES

    return build_member_match_request(
        domain,
        opt_in.resource,
        us=Organization("New", our_npi, "https://new.example/fhir", wellknown),
        partner=Organization("Old", partner_npi),
        shape=PROFILES.hrex[hrex] if hrex else PROFILES.current,
    )


def a_member_bundle(
    pid: str,
    given: str,
    family: str,
    birth: str,
    gender: str,
    member_id: str,
    *,
    link: bool = True,
    policy: str | None = None,
    policy_uri: str | None = None,
    subscriber_id: str | None = None,
    our_npi: str = "1234567893",
    partner_npi: str = "1245319599",
) -> dict[str, Any]:
    """One ``$bulk-member-match`` MemberBundle as the new payer (``our_npi``) sends it to
    the old one (``partner_npi``), its Patient submitted as ``pid``."""
    raw = an_exchange_request(given=[given], family=family, birth_date=birth, gender=gender)
    raw["old_coverage"] = {
        "member_id": member_id,
        "subscriber_id": subscriber_id or member_id,
        "relationship": "self",
    }
    single = member_match_parameters(raw, our_npi=our_npi, partner_npi=partner_npi, policy=policy)
    text = orjson.dumps(single).decode().replace('"Patient/1"', f'"Patient/{pid}"')
    parts = orjson.loads(text)["parameter"]
    for part in parts:
        resource = part["resource"]
        if resource["resourceType"] == "Patient":
            resource["id"] = pid
        if resource["resourceType"] == "Consent" and policy_uri:
            resource["policy"] = [{"uri": policy_uri}]
    if not link:
        parts = [p for p in parts if p["name"] != "CoverageToLink"]
    return {"name": "MemberBundle", "part": parts}


ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def a_member_reaching_sensitive_shared_data(pid: str = "p1") -> dict[str, dict[str, Any]]:
    """A member whose own records look plain but reach sensitive shared resources: an
    order for an HIV antiretroviral by ``medicationReference``, a claim from a 42 CFR
    Part 2 program by ``provider``; beside plain ones. By ``Type/id``."""

    def organization(oid: str, **more: Any) -> dict[str, Any]:
        return {"resourceType": "Organization", "id": oid, "name": oid, **more}

    def medication(mid: str, code: str) -> dict[str, Any]:
        return {
            "resourceType": "Medication",
            "id": mid,
            "code": {"coding": [{"system": RXNORM, "code": code}]},
            "manufacturer": {"reference": f"Organization/{mid}-maker"},
        }

    def order(oid: str, medication_id: str, requester: str) -> dict[str, Any]:
        return {
            "resourceType": "MedicationRequest",
            "id": oid,
            "status": "active",
            "intent": "order",
            "subject": {"reference": f"Patient/{pid}"},
            "medicationReference": {"reference": f"Medication/{medication_id}"},
            "requester": {"reference": f"Practitioner/{requester}"},
        }

    patient = a_patient(pid)
    patient["managingOrganization"] = {"reference": "Organization/part2-program"}
    patient["generalPractitioner"] = [{"reference": "Practitioner/family-doctor"}]
    resources = [
        patient,
        a_coverage(f"{pid}-cov", patient=pid),
        order(f"{pid}-arv-order", "arv", "hiv-specialist"),
        order(f"{pid}-bp-order", "amlodipine", "family-doctor"),
        {
            "resourceType": "ExplanationOfBenefit",
            "id": f"{pid}-part2-claim",
            "status": "active",
            "use": "claim",
            "patient": {"reference": f"Patient/{pid}"},
            "provider": {"reference": "Organization/part2-program"},
            "insurer": {"reference": "Organization/org1"},
        },
        {
            "resourceType": "Encounter",
            "id": f"{pid}-checkup",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": f"Patient/{pid}"},
            "participant": [{"individual": {"reference": "Practitioner/family-doctor"}}],
            "serviceProvider": {"reference": "Organization/clinic"},
        },
        medication("arv", "1999667"),  # bictegravir / emtricitabine / tenofovir
        medication("amlodipine", "197361"),
        organization("arv-maker"),
        organization("amlodipine-maker"),
        organization(
            "part2-program", meta={"security": [{"system": ACT_CODE, "code": "42CFRPart2"}]}
        ),
        organization("clinic", partOf={"reference": "Organization/part2-program"}),
        organization("org1"),
        {"resourceType": "Practitioner", "id": "hiv-specialist"},
        {"resourceType": "Practitioner", "id": "family-doctor"},
        *(
            {
                "resourceType": "Provenance",
                "id": f"{target}-prov",
                "target": [{"reference": f"{kind}/{target}"}],
                "recorded": "2024-01-01T00:00:00Z",
                "agent": [{"who": {"reference": "Organization/clinic"}}],
            }
            for kind, target in (
                ("MedicationRequest", f"{pid}-arv-order"),
                ("Encounter", f"{pid}-checkup"),
            )
        ),
    ]
    return {f"{r['resourceType']}/{r['id']}": r for r in resources}


# What a ``regular`` consent withholds of that member: the sensitive shared resources, the
# records that are about them, and what only those records reach.
WITHHELD_UNDER_REGULAR = frozenset(
    {
        "MedicationRequest/p1-arv-order",
        "ExplanationOfBenefit/p1-part2-claim",
        "Medication/arv",
        "Organization/arv-maker",
        "Organization/part2-program",
        "Practitioner/hiv-specialist",
        "Provenance/p1-arv-order-prov",
    }
)


def a_submitted_exchange(
    ports: Any, raw: dict[str, Any], *, client_id: str, key: str | None = None
) -> str:
    """Submit ``raw`` as ``POST /exchanges`` parses and submits it; the exchange's id."""
    from payerbridge.api.schemas import ExchangeCreate
    from payerbridge.exchange.intake.submission import ExchangeSubmission, submit_exchange

    request = ExchangeCreate.model_validate(raw)
    command = ExchangeSubmission(
        request.to_domain(),
        request.model_dump(mode="json"),
        client_id=client_id,
        idempotency_key=key,
        request_id="r1",
    )
    return submit_exchange(command, ports).exchange_id


def unit_with(uow: Any, **changes: Any) -> Any:
    """A new exchange unit of work like ``uow`` but with ``changes`` to its wiring (a
    partner client that fails, a clock that has moved on)."""
    from payerbridge.exchange.unit import ExchangeUnit

    return ExchangeUnit(dataclasses.replace(uow.wiring, **changes))
