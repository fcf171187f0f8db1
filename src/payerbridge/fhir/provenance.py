"""The PDex Provenance resources payerbridge writes.

- transmitter: on data we share, saying we are its Transmitter (PDex SHALL);
- receipt: on data we received, naming the old payer as transmitter and us as custodian,
  with the source format of what arrived (``ProvenanceSourceFrom``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payerbridge.backends.ingestion import MadeFromSource, ProvenanceOf
from payerbridge.fhir import codes
from payerbridge.routing.model import Organization
from payerbridge.timestamps import utc_iso

__all__ = [
    "Custody",
    "SourceMapping",
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


@dataclass(frozen=True)
class Custody:
    """Who sent data (its Transmitter) to whom it is in custody now (its Custodian), as
    recorded at ``recorded``."""

    transmitter: Organization
    custodian: Organization
    recorded: datetime


@dataclass(frozen=True)
class SourceMapping:
    """Data one of our own backends gave, as a mapping made it: the source, its format
    (PDex ``sourceFormat``) and the mapping's tag (its code and version)."""

    source_id: str
    source_format: str
    mapping: dict[str, str]
    # What was read despite a defect of the source records (texts without values).
    warnings: Sequence[str] = ()


def receipt_provenance(
    provenance_id: str, targets: list[dict[str, Any]], custody: Custody, exchange_id: str
) -> dict[str, Any]:
    """Data received from ``custody.transmitter`` in the exchange ``exchange_id``."""
    what = {
        "identifier": {"system": "urn:payerbridge:exchange", "value": exchange_id},
        "display": f"payer-to-payer exchange from {custody.transmitter.name}",
    }
    return _created_from(provenance_id, targets, custody, what, "hl7fhirr4")


def source_provenance(
    provenance_id: str,
    targets: list[dict[str, Any]],
    made: SourceMapping,
    *,
    custodian: Organization,
    recorded: datetime,
) -> dict[str, Any]:
    """Where resources made from one of our own backends came from: the source, its
    format (PDex ``sourceFormat``) and the mapping version that made them, with us as
    their custodian; its warnings (what was read despite a defect of the source
    records) as extensions of the source entity."""
    mapping = made.mapping
    what = {
        "identifier": {"system": "urn:payerbridge:source", "value": made.source_id},
        "display": f"source {made.source_id}, mapping {mapping['code']}@{mapping['version']}",
    }
    custody = Custody(transmitter=custodian, custodian=custodian, recorded=recorded)
    provenance = _created_from(provenance_id, targets, custody, what, made.source_format)
    provenance["meta"]["tag"] = [mapping]
    provenance["entity"][0]["extension"] += [
        {"url": codes.SOURCE_WARNING_EXTENSION, "valueString": text[:500]} for text in made.warnings
    ]
    return provenance


def _created_from(
    provenance_id: str,
    targets: list[dict[str, Any]],
    custody: Custody,
    what: dict[str, Any],
    source_format: str,
) -> dict[str, Any]:
    """Data created here from ``what`` (its PDex ``sourceFormat``), sent by the custody's
    transmitter and in its custodian's custody."""
    provenance = transmitter_provenance(
        provenance_id, targets, transmitter=custody.transmitter, recorded=custody.recorded
    )
    provenance["activity"] = {
        "coding": [{"system": _DATA_OPERATION, "code": "CREATE", "display": "create"}]
    }
    provenance["agent"].append(
        _agent(codes.PROVENANCE_PARTICIPANT, "custodian", "Custodian", custody.custodian)
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

    def provenance(source: MadeFromSource) -> dict[str, Any]:
        mapping = source.mapping
        made = SourceMapping(
            source.source_id, mapping.source_format, mapping.tag, tuple(source.warnings)
        )
        return source_provenance(
            source.provenance_id,
            source.targets,
            made,
            custodian=us,
            recorded=source.recorded,
        )

    return provenance
