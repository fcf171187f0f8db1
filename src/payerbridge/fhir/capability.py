"""The CapabilityStatement: exactly the interactions and operations this server implements."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from payerbridge.fhir import codes
from payerbridge.fhir.resources import SUPPORTED_TYPES
from payerbridge.timestamps import utc_iso

__all__ = ["capability_statement"]

_IGS = (
    "http://hl7.org/fhir/us/davinci-hrex/ImplementationGuide/hl7.fhir.us.davinci-hrex",
    "http://hl7.org/fhir/us/davinci-pdex/ImplementationGuide/hl7.fhir.us.davinci-pdex",
)


def _patient() -> dict[str, Any]:
    return {
        "type": "Patient",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [
            {
                "name": "identifier",
                "type": "token",
                "definition": "http://hl7.org/fhir/SearchParameter/Patient-identifier",
                "documentation": "system|value or value alone (any system)",
            },
            {
                "name": "_id",
                "type": "token",
                "definition": "http://hl7.org/fhir/SearchParameter/Resource-id",
            },
        ],
        "operation": [
            {"name": "member-match", "definition": codes.MEMBER_MATCH_OPERATION},
            {"name": "everything", "definition": codes.PATIENT_EVERYTHING_OPERATION},
        ],
    }


def capability_statement(
    *, fhir_base: str, software_version: str, org_name: str, published: datetime
) -> dict[str, Any]:
    others = [
        {"type": t, "interaction": [{"code": "read"}]}
        for t in sorted(SUPPORTED_TYPES - {"Patient"})
    ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": utc_iso(published),
        "publisher": org_name,
        "kind": "instance",
        "software": {"name": "payerbridge", "version": software_version},
        "implementation": {
            "description": f"payerbridge payer-to-payer API of {org_name}",
            "url": fhir_base,
        },
        "fhirVersion": codes.FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "implementationGuide": list(_IGS),
        "rest": [
            {
                "mode": "server",
                "documentation": "Payer-to-payer exchange (HRex $member-match, PDex $everything). "
                "Errors are OperationOutcome resources.",
                "resource": [_patient(), *others],
            }
        ],
    }
