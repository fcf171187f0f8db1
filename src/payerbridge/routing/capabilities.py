"""What a partner says it can do, read from its CapabilityStatement (pure): the FHIR
version, the implementation guides (HRex, PDex, US Core, Bulk Data) and their versions
where it names them, and the operations it offers; kept with the time it was read, so
a route can say which reading it was decided from and ``partners refresh`` can say what
changed.

Versions come from canonical URLs: ``implementationGuide`` and ``instantiates``
(``…/ImplementationGuide/hl7.fhir.us.davinci-pdex|2.1.0``,
``…/CapabilityStatement/pdex-server|2.1.0``) and operation definitions
(``…/OperationDefinition/member-match|1.0.0``). A guide named without a version is
recorded as supported, version unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from payerbridge.routing.model import Capabilities

__all__ = ["Capabilities", "changes", "read_capabilities"]

# The guides we route by, by the canonical path that names them.
_GUIDES: Mapping[str, str] = {
    "hrex": "/fhir/us/davinci-hrex/",
    "pdex": "/fhir/us/davinci-pdex/",
    "us-core": "/fhir/us/core/",
    "bulk-data": "/fhir/uv/bulkdata/",
}
_GUIDE_NAMES = {"hrex": "HRex", "pdex": "PDex", "us-core": "US Core", "bulk-data": "Bulk Data"}


def read_capabilities(
    statement: Mapping[str, Any],
    *,
    at: datetime,
    endpoints: Mapping[str, str] | None = None,
    refused: Mapping[str, str] | None = None,
) -> Capabilities:
    """A CapabilityStatement as routing reads it; ``endpoints``: what the partner's SMART
    configuration or UDAP metadata named (its token and registration endpoints);
    ``refused``: those of them we do not call, with why."""
    canonicals = [
        *_strings(statement.get("implementationGuide")),
        *_strings(statement.get("instantiates")),
    ]
    operations: dict[str, str | None] = {}
    searchable: set[str] = set()
    for rest in _dicts(statement.get("rest")):
        for resource in _dicts(rest.get("resource")):
            names = {_string(p.get("name")) for p in _dicts(resource.get("searchParam"))}
            kind = resource.get("type")
            if "patient" in names and isinstance(kind, str) and kind not in _NOT_RECORDS:
                searchable.add(kind)
        for operation in (
            *_dicts(rest.get("operation")),
            *(
                op
                for resource in _dicts(rest.get("resource"))
                for op in _dicts(resource.get("operation"))
            ),
        ):
            name, definition = _operation(operation)
            if name:
                operations[name] = definition
                if definition:
                    canonicals.append(definition)
    guides: dict[str, str | None] = {}
    for canonical in canonicals:
        url, _, version = canonical.partition("|")
        for guide, path in _GUIDES.items():
            if path in url and (guides.get(guide) is None or _is_ig(url)):
                # The guide's own canonical says its version best; an operation's or a
                # CapabilityStatement's version fills in when nothing better is given.
                guides[guide] = version or guides.get(guide)
    software = statement.get("software")
    return Capabilities(
        read_at=at,
        fhir_version=_string(statement.get("fhirVersion")),
        guides=guides,
        operations=frozenset(operations),
        software=_software(software) if isinstance(software, Mapping) else None,
        endpoints=dict(endpoints or {}),
        searchable=frozenset(searchable),
        refused=dict(refused or {}),
    )


def changes(before: Capabilities | None, after: Capabilities) -> list[str]:
    """What a new reading says differently, one line per change, for the operator and
    the audit trail ("dropped operation everything", "PDex 2.1.0 → 2.0.0")."""
    if before is None:
        return ["first reading"]
    found: list[str] = []
    if before.fhir_version != after.fhir_version:
        found.append(f"FHIR {before.fhir_version} → {after.fhir_version}")
    for guide in sorted(set(before.guides) | set(after.guides)):
        name = _GUIDE_NAMES.get(guide, guide)
        if guide not in after.guides:
            found.append(f"no longer declares {name}")
        elif guide not in before.guides:
            found.append(f"now declares {name} {after.guides[guide] or ''}".rstrip())
        elif before.guides[guide] != after.guides[guide]:
            found.append(f"{name} {before.guides[guide]} → {after.guides[guide]}")
    found += [f"dropped operation {op}" for op in sorted(before.operations - after.operations)]
    found += [f"added operation {op}" for op in sorted(after.operations - before.operations)]
    if before.searchable - after.searchable:
        found.append(
            "no longer searched by patient: "
            + ", ".join(sorted(before.searchable - after.searchable))
        )
    if after.searchable - before.searchable:
        found.append(
            "now searched by patient: " + ", ".join(sorted(after.searchable - before.searchable))
        )
    for name in sorted(set(before.endpoints) | set(after.endpoints)):
        if before.endpoints.get(name) != after.endpoints.get(name):
            found.append(f"{name} endpoint changed")
    for name in sorted(set(before.refused) | set(after.refused)):
        if name in after.refused and name not in before.refused:
            found.append(f"{name} endpoint refused")
        elif name in before.refused and name not in after.refused:
            found.append(f"{name} endpoint no longer refused")
    return found


def _operation(operation: Mapping[str, Any]) -> tuple[str | None, str | None]:
    definition = _string(operation.get("definition"))
    name = _string(operation.get("name"))
    if definition:  # the definition's last segment is the operation's code
        code = definition.partition("|")[0].rstrip("/").rsplit("/", 1)[-1]
        # Base operations are named for their resource (Patient-everything, Group-export).
        name = code.split("-", 1)[1] if code.split("-", 1)[0] in _BASE_RESOURCES else code
    return (name.lstrip("$") if name else None), definition


_BASE_RESOURCES = frozenset({"Patient", "Group", "ValueSet", "CodeSystem", "Resource"})


def _is_ig(url: str) -> bool:
    return "/ImplementationGuide/" in url


def _software(software: Mapping[str, Any]) -> str | None:
    name, version = _string(software.get("name")), _string(software.get("version"))
    return " ".join(part for part in (name, version) if part) or None


# Searched by patient but no part of the member's record: a server's own audit trail.
_NOT_RECORDS = frozenset({"AuditEvent"})


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _strings(value: Any) -> Iterable[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _dicts(value: Any) -> Iterable[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
