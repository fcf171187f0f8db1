"""The PDex Provenance resources payerbridge writes.

- transmitter: on data we share, saying we are its Transmitter (PDex SHALL);
- receipt: on data we received, naming the old payer as transmitter and us as custodian,
  with the source format of what arrived (``ProvenanceSourceFrom``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from payerbridge.backends.ingestion import ProvenanceOf
from payerbridge.backends.mapping import Mapping
from payerbridge.fhir import codes
from payerbridge.routing.model import Organization
from payerbridge.timestamps import utc_iso

__all__ = [
    "organization_reference",
    "provenance_by",
    "receipt_provenance",
    "source_provenance",
    "transmitter_provenance",
]

_CONTRACT_SIGNER = "http://terminology.hl7.org/CodeSystem/contractsignertypecodes"
_DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


def organization_reference(organization: Organization) -> dict[str, Any]:
    """A logical reference by NPI: partners do not share each other's resource ids."""
    return {
        "identifier": {"system": codes.NPI_SYSTEM, "value": organization.npi},
        "display": organization.name,
    }


def _agent(system: str, code: str, display: str, who: Organization) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": system, "code": code, "display": display}]},
        "who": organization_reference(who),
    }


def transmitter_provenance(
    provenance_id: str,
    targets: list[dict[str, Any]],
    *,
    transmitter: Organization,
    recorded: datetime,
) -> dict[str, Any]:
    agent = _agent(codes.US_CORE_PROVENANCE_PARTICIPANT, "transmitter", "Transmitter", transmitter)
    agent["role"] = [{"coding": [{"system": _CONTRACT_SIGNER, "code": "TRANS"}]}]
    return {
        "resourceType": "Provenance",
        "id": provenance_id,
        # We author it, so we say when it was last changed (Bulk Data clients sort and
        # deduplicate by it): when it was recorded.
        "meta": {"profile": [codes.PDEX_PROVENANCE_PROFILE], "lastUpdated": utc_iso(recorded)},
        "target": [{"reference": f"{r['resourceType']}/{r['id']}"} for r in targets],
        "recorded": utc_iso(recorded),
        "agent": [agent],
    }


def receipt_provenance(
    provenance_id: str,
    targets: list[dict[str, Any]],
    *,
    transmitter: Organization,
    custodian: Organization,
    recorded: datetime,
    exchange_id: str,
) -> dict[str, Any]:
    return _created_from(
        provenance_id,
        targets,
        transmitter=transmitter,
        custodian=custodian,
        recorded=recorded,
        what={
            "identifier": {"system": "urn:payerbridge:exchange", "value": exchange_id},
            "display": f"payer-to-payer exchange from {transmitter.name}",
        },
        source_format="hl7fhirr4",
    )


def source_provenance(
    provenance_id: str,
    targets: list[dict[str, Any]],
    *,
    custodian: Organization,
    source_id: str,
    source_format: str,
    mapping: dict[str, str],
    recorded: datetime,
) -> dict[str, Any]:
    """Where resources made from one of our own backends came from: the source, its
    format (PDex ``sourceFormat``) and the mapping version that made them, with us as
    their custodian."""
    provenance = _created_from(
        provenance_id,
        targets,
        transmitter=custodian,
        custodian=custodian,
        recorded=recorded,
        what={
            "identifier": {"system": "urn:payerbridge:source", "value": source_id},
            "display": f"source {source_id}, mapping {mapping['code']}@{mapping['version']}",
        },
        source_format=source_format,
    )
    provenance["meta"]["tag"] = [mapping]
    return provenance


def _created_from(
    provenance_id: str,
    targets: list[dict[str, Any]],
    *,
    transmitter: Organization,
    custodian: Organization,
    recorded: datetime,
    what: dict[str, Any],
    source_format: str,
) -> dict[str, Any]:
    """Data created here from ``what`` (its PDex ``sourceFormat``), sent by
    ``transmitter`` and in ``custodian``'s custody."""
    provenance = transmitter_provenance(
        provenance_id, targets, transmitter=transmitter, recorded=recorded
    )
    provenance["activity"] = {
        "coding": [{"system": _DATA_OPERATION, "code": "CREATE", "display": "create"}]
    }
    provenance["agent"].append(
        _agent(codes.PROVENANCE_PARTICIPANT, "custodian", "Custodian", custodian)
    )
    provenance["entity"] = [
        {
            "role": "source",
            "what": what,
            "extension": [
                {
                    "url": codes.PROVENANCE_SOURCE_FORMAT,
                    "valueCodeableConcept": {
                        "coding": [
                            {"system": codes.PROVENANCE_PAYER_DATA_SOURCE, "code": source_format}
                        ]
                    },
                }
            ],
        }
    ]
    return provenance


def provenance_by(us: Organization) -> ProvenanceOf:
    """The source Provenance of what a mapping made, with ``us`` as its custodian (the
    backends' intake carries it)."""

    def provenance(
        provenance_id: str,
        targets: list[dict[str, Any]],
        mapping: Mapping,
        source_id: str,
        recorded: datetime,
    ) -> dict[str, Any]:
        return source_provenance(
            provenance_id,
            targets,
            custodian=us,
            source_id=source_id,
            source_format=mapping.source_format,
            mapping=mapping.tag,
            recorded=recorded,
        )

    return provenance
