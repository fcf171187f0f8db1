"""Our audit events as FHIR R4 AuditEvent resources, following IHE Basic Audit Log
Patterns (BALP 1.1, https://profiles.ihe.net/ITI/BALP/). The BALP StructureDefinitions
are not among the packages we ship (``fhir/packages``): this follows the IG's text.

- Data leaving to a client (``patient.everything``, ``patient.search``): a Privacy
  Disclosure at the Source (DICOM 110106 Export, ISO 21089 ``disclose``), naming the
  recipient (the client, Destination Role ID), us (Source Role ID) and the Patient.
- Data arriving from an old payer (an exchange's ``received``): a Privacy Disclosure at
  the Recipient (DICOM 110107 Import), the old payer the source.
- An answer to a REST call (``member-match``, ``bulk-file.read``): a RESTful Operation
  (audit-event-type ``rest``, restful-interaction ``operation``/``read``), the client
  the requestor (Source Role ID), us the server (Destination Role ID).
- Everything else (exchange moves, consent and identity decisions, registrations):
  DICOM 110100 Application Activity.

Every one carries our own action as a second subtype, the X-Request-ID as a BALP
``XrequestId`` entity, and its place in the chain: ``id`` is the event's ``seq``, which
``GET /audit/proofs`` and ``payerbridge audit prove`` prove. No profile is claimed but
the two disclosure ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

import orjson

from payerbridge.audit.model import StoredEvent

__all__ = ["ACTIONS_SYSTEM", "AuditObserver", "audit_event_resource"]

DCM = "http://dicom.nema.org/resources/ontology/DCM"
BALP = "https://profiles.ihe.net/ITI/BALP"
ACTIONS_SYSTEM = "https://payerbridge.dev/CodeSystem/audit-action"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_NPI = "http://hl7.org/fhir/sid/us-npi"
_CLIENTS = "urn:payerbridge:client"
_SYSTEM_ACTOR = "payerbridge"


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


EXPORT = _coding(DCM, "110106", "Export")
IMPORT = _coding(DCM, "110107", "Import")
APPLICATION = _coding(DCM, "110100", "Application Activity")
REST = _coding(
    "http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "RESTful Operation"
)
DISCLOSE = _coding(
    "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle",
    "disclose",
    "Disclose Record Lifecycle Event",
)
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
SOURCE_ROLE = _coding(DCM, "110153", "Source Role ID")
DESTINATION_ROLE = _coding(DCM, "110152", "Destination Role ID")
PATIENT_REQUESTED = _coding(
    "http://terminology.hl7.org/CodeSystem/v3-ActReason", "PATRQT", "patient requested"
)
_FAILURES = frozenset(
    {"failure", "deny", "failed", "blocked", "dead_lettered", "gave-up", "refused", "unavailable"}
)


@dataclass(frozen=True)
class AuditObserver:
    """Us, as the source of every event: our name, NPI and FHIR base."""

    name: str
    npi: str
    fhir_base: str


@dataclass(frozen=True)
class _Pattern:
    type: dict[str, str]
    subtype: dict[str, str] | None
    action: str  # C R U D E
    profile: str | None = None
    disclosure: str | None = None  # "source" or "recipient"


def _pattern(event: StoredEvent, detail: dict[str, Any]) -> _Pattern:
    action = event.action
    if action in ("patient.everything", "patient.search"):
        profile = f"{BALP}/StructureDefinition/IHE.BasicAudit.PrivacyDisclosure.Source"
        return _Pattern(EXPORT, DISCLOSE, "R", profile, "source")
    if action == "exchange.transition" and detail.get("to") == "received":
        profile = f"{BALP}/StructureDefinition/IHE.BasicAudit.PrivacyDisclosure.Recipient"
        return _Pattern(IMPORT, DISCLOSE, "C", profile, "recipient")
    if action == "member-match":
        return _Pattern(REST, _coding(_INTERACTION, "operation", "operation"), "E")
    if action == "bulk-file.read":
        return _Pattern(REST, _coding(_INTERACTION, "read", "read"), "R")
    return _Pattern(APPLICATION, None, "E")


def audit_event_resource(event: StoredEvent, us: AuditObserver) -> dict[str, Any]:
    """The stored event as a BALP-styled AuditEvent (see the module docstring)."""
    detail = orjson.loads(event.detail) if event.detail else {}
    pattern = _pattern(event, detail)
    subtypes = [pattern.subtype] if pattern.subtype else []
    resource: dict[str, Any] = {"resourceType": "AuditEvent", "id": str(event.seq)}
    if pattern.profile is not None:
        resource["meta"] = {"profile": [pattern.profile]}
    resource |= {
        "type": pattern.type,
        "subtype": [*subtypes, {"system": ACTIONS_SYSTEM, "code": event.action}],
        "action": pattern.action,
        "recorded": _instant(event),
        "outcome": "4" if event.outcome in _FAILURES or event.outcome[:1].isupper() else "0",
        "outcomeDesc": event.outcome,
        "agent": _agents(event, pattern, detail, us),
        "source": {
            "site": us.fhir_base,
            "observer": {"identifier": {"system": _NPI, "value": us.npi}, "display": us.name},
            "type": [
                _coding(
                    "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "4",
                    "Application Server",
                )
            ],
        },
        "entity": _entities(event),
    }
    if pattern.disclosure is not None:
        resource["purposeOfEvent"] = [{"coding": [PATIENT_REQUESTED]}]
    return resource


def _instant(event: StoredEvent) -> str:
    at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _us(us: AuditObserver, role: dict[str, str], *, requestor: bool) -> dict[str, Any]:
    return {
        "type": {"coding": [role]},
        "who": {"identifier": {"system": _NPI, "value": us.npi}, "display": us.name},
        "requestor": requestor,
        "network": {"address": us.fhir_base, "type": "5"},  # 5: URI
    }


def _client(client_id: str, role: dict[str, str], *, requestor: bool) -> dict[str, Any]:
    return {
        "type": {"coding": [role]},
        "who": {"identifier": {"system": _CLIENTS, "value": client_id}},
        "requestor": requestor,
    }


def _agents(
    event: StoredEvent, pattern: _Pattern, detail: dict[str, Any], us: AuditObserver
) -> list[dict[str, Any]]:
    by_us = event.actor == _SYSTEM_ACTOR
    if pattern.disclosure == "source":  # we release to the client that asked
        return [
            _us(us, SOURCE_ROLE, requestor=False),
            _client(event.actor, DESTINATION_ROLE, requestor=True),
        ]
    if pattern.disclosure == "recipient":  # the old payer sent to us, as we asked
        call = detail.get("call") or {}
        source: dict[str, Any] = {
            "type": {"coding": [SOURCE_ROLE]},
            "who": {"display": "the old payer"},
            "requestor": False,
        }
        if call.get("endpoint"):
            source["network"] = {"address": call["endpoint"], "type": "5"}
        return [source, _us(us, DESTINATION_ROLE, requestor=True)]
    if by_us:
        return [_us(us, SOURCE_ROLE, requestor=True)]
    return [
        _client(event.actor, SOURCE_ROLE, requestor=True),
        _us(us, DESTINATION_ROLE, requestor=False),
    ]


def _entities(event: StoredEvent) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if event.entity_type == "Patient" and event.entity_id != "-":
        entities.append(
            {
                "what": {"reference": f"Patient/{event.entity_id}"},
                "type": _coding(_ENTITY_TYPE, "1", "Person"),
                "role": _coding(_ROLE, "1", "Patient"),
            }
        )
    else:
        entities.append(
            {
                "what": {
                    "identifier": {
                        "system": f"urn:payerbridge:{event.entity_type}",
                        "value": event.entity_id,
                    }
                },
                "type": _coding(_ENTITY_TYPE, "2", "System Object"),
                "role": _coding(_ROLE, "4", "Domain Resource"),
                "name": event.entity_type,
            }
        )
    if event.detail:  # ids, codes and hashes only (ADR 0007): the stored text, as hashed
        entities[0]["detail"] = [{"type": "payerbridge-detail", "valueString": event.detail}]
    if event.request_id:
        entities.append(
            {
                "what": {"identifier": {"value": event.request_id}},
                "type": _coding(
                    f"{BALP}/CodeSystem/BasicAuditEntityType", "XrequestId", "X-Request-Id"
                ),
            }
        )
    return entities
