"""What a FHIR server's CapabilityStatement (``<base>/metadata``) says it offers that a
source relies on: ``_lastUpdated`` per type, and a Bulk Data export of Patients."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from payerbridge.errors import PartnerError
from payerbridge.sources.connection import FhirConnection

__all__ = ["Capabilities", "read_capabilities"]

logger = logging.getLogger(__name__)

_EXPORT_OPERATIONS = ("export", "patient-export")


@dataclass(frozen=True)
class Capabilities:
    """``read`` False when the statement could not be had: then nothing is assumed."""

    read: bool = False
    last_updated: frozenset[str] = field(default_factory=frozenset)  # types, or "*"
    patient_export: bool = False

    def offers_last_updated(self, resource_type: str) -> bool:
        return "*" in self.last_updated or resource_type in self.last_updated


def read_capabilities(http: FhirConnection, timeout: float) -> Capabilities:
    try:
        response = http.get(f"{http.base}/metadata", timeout, what="CapabilityStatement")
        statement = response.json() if response.status_code == 200 else None
    except (PartnerError, ValueError):
        statement = None
    if not isinstance(statement, dict) or statement.get("resourceType") != "CapabilityStatement":
        logger.warning("source capabilities unknown", extra={"source_id": http.source})
        return Capabilities()
    return parse_capabilities(statement)


def parse_capabilities(statement: dict[str, Any]) -> Capabilities:
    last_updated: set[str] = set()
    export = False
    for rest in _list(statement.get("rest")):
        if rest.get("mode", "server") != "server":
            continue
        if _names(rest.get("searchParam")) & {"_lastUpdated"}:
            last_updated.add("*")
        export |= bool(_operations(rest) & set(_EXPORT_OPERATIONS))
        for resource in _list(rest.get("resource")):
            kind = resource.get("type")
            if "_lastUpdated" in _names(resource.get("searchParam")) and isinstance(kind, str):
                last_updated.add(kind)
            if kind == "Patient" and _operations(resource) & set(_EXPORT_OPERATIONS):
                export = True
    return Capabilities(True, frozenset(last_updated), export)


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value or [] if isinstance(v, dict)] if isinstance(value, list) else []


def _names(params: Any) -> set[str]:
    return {str(p.get("name")) for p in _list(params)}


def _operations(holder: dict[str, Any]) -> set[str]:
    names = set()
    for operation in _list(holder.get("operation")):
        name = str(operation.get("name", "")).lstrip("$")
        definition = str(operation.get("definition", ""))
        names.add(name)
        if definition.endswith("/patient-export"):
            names.add("patient-export")
    return names
