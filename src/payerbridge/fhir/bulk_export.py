"""Bulk Data export requests: ``Group/{id}/$davinci-data-export`` (Da Vinci ATR, as PDex
uses it), ``Group/{id}/$export``, ``Patient/$export`` and ``$export``, read from the
query string or a Parameters body.

Every parameter we do not implement is refused by name (400), never ignored: PDex 2.2
§pdex-180 forbids ignoring ``_typeFilter`` silently, and Bulk Data servers refuse what
they cannot honour. Under ``Prefer: handling=lenient`` Bulk Data lets a server go on
without an optional parameter it does not support: the output parameters
(``_elements``, ``includeAssociatedData``, ``organizeOutputBy``,
``allowPartialManifests``) and types we do not hold in ``_type`` are then left out and
named in the export's notices, never silently. ``_typeFilter`` stays refused even then:
going on without it would send more than was asked. ``exportType`` is PDex's
payer-to-payer one (what is exported without it) or one of Provider Access's
(``provider-download``, ``provider-delta``); which a Group takes is its kind's to say.

The types that go are also limited to those the access token grants (``limited_to``):
the rest are named in the notices, and a token that grants none is refused (403)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from payerbridge.errors import Forbidden, InvalidInput, Issue
from payerbridge.fhir.codes import (
    PAYER_TO_PAYER_EXPORT,
    PROVIDER_DELTA_EXPORT,
    PROVIDER_DOWNLOAD_EXPORT,
)
from payerbridge.fhir.member_match import require_parameters
from payerbridge.fhir.resources import ID_PATTERN, SUPPORTED_TYPES
from payerbridge.timestamps import parse_instant
from payerbridge.types import MemberId

__all__ = [
    "EXPORT_TYPES",
    "ExportRequest",
    "Notice",
    "export_parameters",
    "parse_export_request",
]

_NDJSON = {"application/fhir+ndjson", "application/ndjson", "ndjson"}
# Bulk Data and ATR parameters we know and do not implement.
_LENIENT_HINT = "; send Prefer: handling=lenient to export without it"
_UNSUPPORTED = {
    "_typeFilter": "this server does not support _typeFilter; narrow the export with "
    "_type, _since and _until",
    "_elements": "this server exports whole resources; _elements is not supported" + _LENIENT_HINT,
    "includeAssociatedData": "includeAssociatedData is not supported" + _LENIENT_HINT,
    "organizeOutputBy": "output is organised by resource type only; organizeOutputBy is "
    "not supported" + _LENIENT_HINT,
    "allowPartialManifests": "manifests are complete; allowPartialManifests is not supported"
    + _LENIENT_HINT,
}
# Of those, what Bulk Data lets a server do without under Prefer: handling=lenient.
_LENIENT = {"_elements", "includeAssociatedData", "organizeOutputBy", "allowPartialManifests"}
_KNOWN = ("exportType", "_type", "_since", "_until", "patient", "_outputFormat")
EXPORT_TYPES = (PAYER_TO_PAYER_EXPORT, PROVIDER_DOWNLOAD_EXPORT, PROVIDER_DELTA_EXPORT)


@dataclass(frozen=True)
class Notice:
    """Something the export leaves out of what was asked, and why: told at kick-off and
    in the error file, never silently (``parameter``: what it concerns)."""

    parameter: str
    text: str
    code: str  # an OperationOutcome issue code

    def to_json(self) -> dict[str, str]:
        return {"parameter": self.parameter, "text": self.text, "code": self.code}


@dataclass(frozen=True)
class ExportRequest:
    types: frozenset[str] | None  # None: every type we hold
    since: datetime | None
    until: datetime | None
    patients: tuple[MemberId, ...] | None  # Patient ids to export of those in scope; None: all
    # Bulk Data's $export: _type names every type that goes, the Patient and Provenance
    # too. PDex's $davinci-data-export: the member's Patient and our transmitter
    # Provenance go whatever _type says (ADR 0018).
    exact_types: bool = False
    notices: tuple[Notice, ...] = ()
    export_type: str = PAYER_TO_PAYER_EXPORT  # PDex's exportType, one of ``EXPORT_TYPES``

    @property
    def has_our_provenance(self) -> bool:
        """Whether our transmitter Provenance goes with what is exported."""
        return not self.exact_types or self.types is None or "Provenance" in self.types

    def limited_to(self, granted: frozenset[str] | None, scope_hint: str) -> ExportRequest:
        """This export limited to the types the access token grants (None: all): exact
        types from then on (PDex's Patient and Provenance go only if granted too), the
        types left out named in a notice. Forbidden (403) when nothing is left;
        ``scope_hint``: the scope form to name (``system/`` or ``patient/``)."""
        if granted is None:
            return self
        wanted = set(SUPPORTED_TYPES if self.types is None else self.types)
        if not self.exact_types and self.types is not None:
            wanted |= {"Patient", "Provenance"}
        allowed, refused = wanted & granted, sorted(wanted - granted)
        if not allowed:
            text = (
                "the access token grants none of the types this export would hold; request "
                f"a token with {scope_hint}*.rs or {scope_hint}[type].rs for the types wanted"
            )
            raise Forbidden(text, issues=[Issue(text, "Authorization", "forbidden")])
        notices = self.notices
        if refused:
            text = (
                f"not exported: {', '.join(refused)}: the access token does not grant "
                f"{scope_hint}[type].rs (or .read) for them"
            )
            notices = (*notices, Notice("_type", text, "forbidden"))
        return replace(self, types=frozenset(allowed), exact_types=True, notices=notices)

    def to_json(self) -> dict[str, Any]:
        return {
            "types": sorted(self.types) if self.types is not None else None,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "patients": list(self.patients) if self.patients is not None else None,
            "exact_types": self.exact_types,
            "notices": [notice.to_json() for notice in self.notices],
            "export_type": self.export_type,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportRequest:
        types, since, until, patients = (
            data.get(k) for k in ("types", "since", "until", "patients")
        )
        return cls(
            frozenset(types) if types is not None else None,
            datetime.fromisoformat(since) if since else None,
            datetime.fromisoformat(until) if until else None,
            tuple(MemberId(p) for p in patients) if patients is not None else None,
            bool(data.get("exact_types", False)),  # a job accepted before it was kept
            tuple(Notice(**notice) for notice in data.get("notices", ())),
            str(data.get("export_type", PAYER_TO_PAYER_EXPORT)),  # kept before it was asked
        )


def export_parameters(body: Any) -> list[tuple[str, str]]:
    """A Parameters body's parameters as (name, value) pairs, values as the query string
    would carry them (a ``patient`` Reference as its reference)."""
    require_parameters(body, "an export")
    pairs: list[tuple[str, str]] = []
    issues: list[Issue] = []
    for index, parameter in enumerate(body.get("parameter") or []):
        where = f"Parameters.parameter[{index}]"
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if not isinstance(name, str) or not name:
            issues.append(Issue("every parameter needs a name", where, "required"))
            continue
        values = [v for k, v in parameter.items() if k.startswith("value")]
        value = values[0] if len(values) == 1 else None
        if isinstance(value, dict):  # a Reference
            value = value.get("reference")
        if not isinstance(value, str):
            issues.append(Issue(f"{name} needs exactly one value", where, "invalid"))
            continue
        pairs.append((name, value))
    if issues:
        raise InvalidInput("the export Parameters are not valid", issues=issues)
    return pairs


def parse_export_request(
    params: Iterable[tuple[str, str]],
    *,
    exact_types: bool = False,
    lenient: bool = False,
    takes_patient: bool = True,
) -> ExportRequest:
    """The export asked for; InvalidInput (400) naming every parameter that is unknown,
    unsupported, repeated or malformed. ``exact_types``: Bulk Data's ``$export`` (see
    ``ExportRequest``); ``lenient``: ``Prefer: handling=lenient`` (see the module);
    ``takes_patient``: False for the system-level ``$export``, which has no ``patient``."""
    asked = _Asked()
    seen: set[str] = set()
    for raw_name, value in params:
        name = raw_name.split(":")[0]
        if name in seen and name not in ("_type", "patient"):
            asked.issues.append(Issue(f"{name} may be given once", name, "invalid"))
            continue
        seen.add(name)
        _read_parameter(asked, name, value, lenient=lenient, takes_patient=takes_patient)
    issues, since, until, types = asked.issues, asked.since, asked.until, asked.types
    if since is not None and until is not None and until <= since:
        issues.append(Issue("_until must be later than _since", "_until", "invalid"))
    if types is not None and not types and not issues:
        issues.append(Issue("_type names no type this server holds", "_type", "not-supported"))
    if issues:
        raise InvalidInput("the export request is not valid", issues=issues)
    return ExportRequest(
        frozenset(types) if types is not None else None,
        since,
        until,
        tuple(dict.fromkeys(map(MemberId, asked.patients))) if asked.patients is not None else None,
        exact_types,
        tuple(asked.notices),
        asked.export_type,
    )


@dataclass
class _Asked:
    """An export request as its parameters are read, with the problems found so far."""

    issues: list[Issue] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    types: set[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    patients: list[str] | None = None
    export_type: str = PAYER_TO_PAYER_EXPORT


def _read_parameter(
    asked: _Asked, name: str, value: str, *, lenient: bool, takes_patient: bool
) -> None:
    """One parameter into ``asked``: its value, or the issue or notice it makes."""
    issues = asked.issues
    if name == "exportType":
        if value.strip() not in EXPORT_TYPES:
            issues.append(
                Issue(f"exportType '{value[:80]}' is not offered; this server exports "
                      f"{', '.join(EXPORT_TYPES)}", name, "not-supported")
            )  # fmt: skip
        else:
            asked.export_type = value.strip()
    elif name == "_type":
        _read_types(asked, value, lenient=lenient)
    elif name in ("_since", "_until"):
        instant = parse_instant(value)
        if instant is None:
            issues.append(
                Issue(f"{name} must be a FHIR instant with a time zone, e.g. "
                      "2024-01-01T00:00:00Z", name, "invalid")
            )  # fmt: skip
        elif name == "_since":
            asked.since = instant
        else:
            asked.until = instant
    elif name == "patient" and not takes_patient:
        issues.append(
            Issue("patient is a parameter of Patient/$export and Group/[id]/$export, "
                  "not of the system-level $export", name, "not-supported")
        )  # fmt: skip
    elif name == "patient":
        patient_id = value.strip().removeprefix("Patient/")
        if not value.strip().startswith("Patient/") or not ID_PATTERN.match(patient_id):
            issues.append(Issue("patient takes a reference Patient/[id]", name, "invalid"))
        else:
            asked.patients = [*(asked.patients or []), patient_id]
    elif name == "_outputFormat":
        if value.strip() not in _NDJSON:
            issues.append(
                Issue(f"_outputFormat '{value[:60]}' is not offered; output is "
                      "application/fhir+ndjson", name, "not-supported")
            )  # fmt: skip
    elif name in _LENIENT and lenient:
        text = f"{name} is not supported and was left out (Prefer: handling=lenient)"
        asked.notices.append(Notice(name, text, "not-supported"))
    elif name in _UNSUPPORTED:
        issues.append(Issue(_UNSUPPORTED[name], name, "not-supported"))
    else:
        issues.append(
            Issue(f"{name[:64]} is not a parameter of this export (supported: "
                  f"{', '.join(_KNOWN)})", name[:64], "not-supported")
        )  # fmt: skip


def _read_types(asked: _Asked, value: str, *, lenient: bool) -> None:
    """A ``_type`` value: the types this server holds; the others an issue, or under
    ``Prefer: handling=lenient`` a notice."""
    types = asked.types if asked.types is not None else set()
    asked.types = types
    for resource_type in (t.strip() for t in value.split(",")):
        if resource_type in SUPPORTED_TYPES:
            types.add(resource_type)
            continue
        text = f"_type: '{resource_type[:64]}' is not a type this server holds"
        if lenient:
            asked.notices.append(Notice("_type", f"{text}; not exported", "not-supported"))
        else:
            asked.issues.append(Issue(text, "_type", "not-supported"))
