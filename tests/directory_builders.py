"""Small NDH-style directory bundles for the tests: payer Organizations, their Endpoints
(payer-to-payer or of another use case) and affiliations."""

from __future__ import annotations

from typing import Any

NDH = "http://hl7.org/fhir/us/ndh"
USE_CASE = f"{NDH}/StructureDefinition/base-ext-endpoint-usecase"
TRUST = f"{NDH}/StructureDefinition/base-ext-trustFramework"
RANK = f"{NDH}/StructureDefinition/base-ext-endpoint-rank"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"


def use_case(code: str = "payerToPayer") -> dict[str, Any]:
    return {
        "url": USE_CASE,
        "extension": [
            {
                "url": "endpointUsecasetype",
                "valueCodeableConcept": {
                    "coding": [
                        {"system": f"{NDH}/CodeSystem/NdhFhirEndpointUseCaseCS", "code": code}
                    ]
                },
            }
        ],
    }


def endpoint(
    endpoint_id: str,
    address: str,
    *,
    use: str = "payerToPayer",
    status: str = "active",
    udap: bool = False,
    rank: int | None = None,
    period: dict[str, str] | None = None,
    managed_by: str | None = None,
) -> dict[str, Any]:
    extensions = [use_case(use)]
    if udap:
        extensions.append(
            {
                "url": TRUST,
                "extension": [
                    {
                        "url": "trustFrameworkType",
                        "valueCodeableConcept": {"coding": [{"code": "UDAP", "display": "UDAP"}]},
                    }
                ],
            }
        )
    if rank is not None:
        extensions.append({"url": RANK, "valuePositiveInt": rank})
    resource: dict[str, Any] = {
        "resourceType": "Endpoint",
        "id": endpoint_id,
        "extension": extensions,
        "status": status,
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "hl7-fhir-rest",
        },
        "payloadType": [{"coding": [{"code": "NA"}]}],
        "address": address,
    }
    if period is not None:
        resource["period"] = period
    if managed_by is not None:
        resource["managingOrganization"] = {"reference": f"Organization/{managed_by}"}
    return resource


def organization(
    organization_id: str,
    name: str,
    npi: str | None,
    endpoints: list[str] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": organization_id,
        "active": True,
        "name": name,
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": "pay",
                    }
                ]
            }
        ],
        "endpoint": [{"reference": f"Endpoint/{e}"} for e in endpoints],
    }
    if npi is not None:
        resource["identifier"] = [{"system": NPI_SYSTEM, "value": npi}]
    return resource


def bundle(*resources: dict[str, Any], identifier: str | None = "test-directory") -> dict[str, Any]:
    document: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": f"https://directory.example/fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
            }
            for r in resources
        ],
    }
    if identifier is not None:
        document["identifier"] = {"system": "https://directory.example", "value": identifier}
    return document


def one_payer(
    name: str, npi: str, *addresses: str, udap: bool = False, directory: str = "test-directory"
) -> dict[str, Any]:
    """A bundle of one payer with its payer-to-payer endpoints, in order."""
    ids = [f"{name.lower().replace(' ', '-')}-{n}" for n in range(len(addresses))]
    endpoints = [endpoint(i, a, udap=udap) for i, a in zip(ids, addresses, strict=True)]
    return bundle(organization("org-1", name, npi, ids), *endpoints, identifier=directory)
