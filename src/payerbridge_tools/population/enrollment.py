"""A member's enrollment resources (Patient, Coverage) and the Provenance that closes them.

The Patient carries the member id and the UMB; the Coverage names the
subscriber, the group and the plan. One Provenance per member, written after
the member's history, names the payer as author and transmitter of everything
the file holds about that member.
"""

from __future__ import annotations

from payerbridge_tools.population.households import Household, Member
from payerbridge_tools.population.network import PayerContext
from payerbridge_tools.population.shapes import (
    HREX_TEMP,
    NPI_SYSTEM,
    SOPT,
    TERMINOLOGY,
    UMB,
    Resource,
    concept,
    hl7_concept,
    mb_type,
    ref,
)


def patient_resource(ctx: PayerContext, household: Household, member: Member) -> Resource:
    slug = ctx.payer.slug
    return {
        "resourceType": "Patient",
        "id": member.patient_id,
        "identifier": [
            {
                "type": mb_type(),
                "system": f"http://{slug}.example.org/member-id",
                "value": member.member_id,
            },
            {
                "type": concept(HREX_TEMP, UMB),
                "system": f"http://{slug}.example.org/umb",
                "value": member.umb,
            },
        ],
        "active": True,
        "name": [_name(member)],
        "telecom": [{"system": "phone", "value": member.phone, "use": member.phone_use}],
        "gender": member.gender,
        "birthDate": member.birth_date.isoformat(),
        "address": [
            {
                "use": "home",
                "line": list(household.lines),
                "city": household.place.city,
                "state": household.place.state,
                "postalCode": household.postal_code,
                "country": "US",
            }
        ],
    }


def _name(member: Member) -> dict[str, object]:
    name: dict[str, object] = {
        "use": "official",
        "family": member.family,
        "given": list(member.given),
    }
    if member.suffix:
        name["suffix"] = [member.suffix]
    return name


def coverage_resource(ctx: PayerContext, household: Household, member: Member) -> Resource:
    subscriber = f"Patient/{household.members[0].patient_id}"
    payer_type = ("1", "MEDICARE") if household.is_medicare else ("5", "PRIVATE HEALTH INSURANCE")
    return {
        "resourceType": "Coverage",
        "id": f"{ctx.abbr}-cov-{household.index:07d}-{member.pos}",
        "identifier": [
            {
                "type": mb_type(),
                "system": f"http://{ctx.payer.slug}.example.org/member-id",
                "value": member.member_id,
            }
        ],
        "status": "active",
        "type": concept(SOPT, payer_type),
        "policyHolder": ref(subscriber),
        "subscriber": ref(subscriber),
        "subscriberId": household.subscriber_id,
        "beneficiary": ref(f"Patient/{member.patient_id}"),
        "dependent": f"{member.pos:02d}",
        "relationship": {
            "coding": [
                {"system": TERMINOLOGY + "subscriber-relationship", "code": member.relationship}
            ]
        },
        "period": {"start": member.coverage_start.isoformat()},
        "payor": [
            {
                "reference": f"Organization/{ctx.org_id}",
                "identifier": {"system": NPI_SYSTEM, "value": ctx.payer.npi},
                "display": ctx.payer.name,
            }
        ],
        "class": [
            {
                "type": hl7_concept("coverage-class", "group"),
                "value": household.group[0],
                "name": household.group[1],
            },
            {
                "type": hl7_concept("coverage-class", "plan"),
                "value": household.plan[0],
                "name": household.plan[1],
            },
        ],
    }


def provenance_resource(
    ctx: PayerContext, household: Household, member: Member, history_refs: list[str]
) -> Resource:
    payer = f"Organization/{ctx.org_id}"
    coverage = f"Coverage/{ctx.abbr}-cov-{household.index:07d}-{member.pos}"
    own = [f"Patient/{member.patient_id}", coverage]
    return {
        "resourceType": "Provenance",
        "id": f"{ctx.abbr}-provenance-{household.index:07d}-{member.pos}",
        "target": [ref(reference) for reference in own + history_refs],
        "recorded": f"{ctx.as_of.isoformat()}T00:00:00Z",
        "agent": [
            {
                "type": concept(TERMINOLOGY + "provenance-participant-type", ("author", "Author")),
                "who": ref(payer),
            },
            {
                "type": concept(
                    "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type",
                    ("transmitter", "Transmitter"),
                ),
                "role": [
                    {
                        "coding": [
                            {"system": TERMINOLOGY + "contractsignertypecodes", "code": "TRANS"}
                        ]
                    }
                ],
                "who": ref(payer),
            },
        ],
    }
