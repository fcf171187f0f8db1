"""Light, fast traversal of FHIR R4 JSON resources (plain dicts).

The import hot path and the exchange use these instead of full model parsing: they
check what the store relies on (type, id, compartment link, identifiers) and leave
profile validation to the operations that need it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from payerbridge.fhir.codes import RECORD_ROLE

__all__ = [
    "COMPARTMENT_FIELD",
    "ID_PATTERN",
    "SUPPORTED_TYPES",
    "compartment_patient",
    "is_member_record",
    "is_source_record",
    "iter_references",
    "json_of",
    "references_of",
    "rewrite_references",
]

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

# The element that puts a resource in a member's Patient compartment (spec digest §2.4 types).
# None: the type lives outside any compartment (shared reference data).
COMPARTMENT_FIELD: dict[str, str | None] = {
    "Patient": None,
    "AllergyIntolerance": "patient",
    "CarePlan": "subject",
    "CareTeam": "subject",
    "Condition": "subject",
    "Coverage": "beneficiary",
    "Device": "patient",
    "DiagnosticReport": "subject",
    "DocumentReference": "subject",
    "Encounter": "subject",
    "ExplanationOfBenefit": "patient",
    "Goal": "subject",
    "Immunization": "patient",
    "Location": None,
    "Medication": None,
    "MedicationDispense": "subject",
    "MedicationRequest": "subject",
    "Observation": "subject",
    "Organization": None,
    "Practitioner": None,
    "PractitionerRole": None,
    "Procedure": "subject",
    "Provenance": "target",
    # A member's relation as the plan knows them (an 834 dependent's subscriber, ADR 0058):
    # in the member's compartment by RelatedPerson.patient, as FHIR R4 puts it.
    "RelatedPerson": "patient",
}
SUPPORTED_TYPES = frozenset(COMPARTMENT_FIELD)


def _patient_id_of(reference: Any) -> str | None:
    if isinstance(reference, dict):
        ref = reference.get("reference")
        if isinstance(ref, str) and ref.startswith("Patient/"):
            return ref[8:]
    return None


def compartment_patient(resource: dict[str, Any]) -> str | None:
    """The id of the Patient whose compartment holds this resource, if it names one locally."""
    resource_type = resource["resourceType"]
    if resource_type == "Patient":
        return resource.get("id")
    field = COMPARTMENT_FIELD.get(resource_type)
    if field is None:
        return None
    value = resource.get(field)
    if isinstance(value, list):
        for item in value:
            patient_id = _patient_id_of(item)
            if patient_id:
                return patient_id
        return None
    return _patient_id_of(value)


def is_member_record(resource: Any) -> bool:
    """Our Patient for a member the plan holds no Patient for (ADR 0054): ours alone, never
    delivered as if it were the plan's."""
    return _has_role(resource, "member")


def is_source_record(resource: Any) -> bool:
    """An old payer's Patient for a member, kept linked to the member's one Patient here
    (ADR 0054): never given to another payer as the member's."""
    return _has_role(resource, "source")


def _has_role(resource: Any, role: str) -> bool:
    meta = resource.get("meta") if isinstance(resource, dict) else None
    tags = meta.get("tag") if isinstance(meta, dict) else None
    return isinstance(tags, list) and any(
        isinstance(t, dict) and t.get("system") == RECORD_ROLE and t.get("code") == role
        for t in tags
    )


# Leaves of parsed JSON: no reference can be inside them.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def iter_references(node: Any) -> Iterator[str]:
    """Every ``Reference.reference`` string anywhere in the resource."""
    # Exact type checks first: this walks every element of every exported resource.
    stack = [node]
    pop, push = stack.pop, stack.append
    while stack:
        current = pop()
        if isinstance(current, dict):
            for key, value in current.items():
                kind = type(value)
                if kind is str:
                    if key == "reference":
                        yield value
                elif kind is dict or kind is list:
                    push(value)
                elif kind not in _SCALARS:
                    if key == "reference" and isinstance(value, str):
                        yield value
                    elif isinstance(value, (dict, list)):
                        push(value)
        elif isinstance(current, list):
            for item in current:
                kind = type(item)
                if (
                    kind is dict
                    or kind is list
                    or (kind not in _SCALARS and isinstance(item, (dict, list)))
                ):
                    push(item)


# A Reference.reference as the resource's JSON holds it, when it has no escape.
_REFERENCES_IN_JSON = re.compile(rb'"reference":"([^"\\]*)"')


def json_of(resource: Any) -> bytes | None:
    """The resource as JSON, or None when JSON cannot hold it (what a caller then walks)."""
    try:
        return orjson.dumps(resource)
    except (TypeError, orjson.JSONEncodeError):
        return None


def references_of(resource: Any, raw: bytes | None = None) -> list[str]:
    """``iter_references`` of the resource, read from ``raw`` (its JSON, ``json_of``) in C
    when given: one expression instead of a walk of every element. A reference JSON
    escapes is not read by the expression, so the resource is then walked."""
    if raw is not None:
        found = _REFERENCES_IN_JSON.findall(raw)
        if b"\\" not in raw or len(found) == raw.count(b'"reference":"'):
            return [reference.decode() for reference in found]
    return list(iter_references(resource))


def rewrite_references(node: Any, rewrite: Callable[[str], str]) -> Any:
    """A copy of the resource with every ``Reference.reference`` passed through ``rewrite``."""
    if isinstance(node, dict):
        return {
            key: rewrite(value)
            if key == "reference" and isinstance(value, str)
            else rewrite_references(value, rewrite)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [rewrite_references(item, rewrite) for item in node]
    return node
