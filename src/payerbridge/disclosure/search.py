"""The searches a requesting payer needs, within one member's records (pure): which
parameters each type takes (PDex's and US Core 3.1.1's required searches), how a request
is read, and whether a resource matches.

Every search names its member (``patient``, or ``beneficiary`` for Coverage), because
each is decided by that member's consent and segmented with that member's records.
Anything else, an unknown parameter, a modifier, a malformed value, is refused by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from payerbridge.errors import InvalidInput, Issue
from payerbridge.json_paths import codings, values_at
from payerbridge.types import MemberId

__all__ = [
    "INCLUDES",
    "MEMBER_PARAMS",
    "PRIOR_AUTHORIZATION_PROFILE",
    "SEARCHABLE",
    "Filter",
    "PatientQuery",
    "SearchQuery",
    "parse_patient_search",
    "parse_search",
    "span_of",
]

Resource = Mapping[str, Any]

PRIOR_AUTHORIZATION_PROFILE = (
    "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-priorauthorization"
)


@dataclass(frozen=True)
class _Param:
    kind: str  # token, code, date, uri
    paths: tuple[str, ...]  # where the value sits (dotted; lists walked)


def _token(*paths: str) -> _Param:
    return _Param("token", paths)


def _code(*paths: str) -> _Param:
    return _Param("code", paths)


def _date(*paths: str) -> _Param:
    return _Param("date", paths)


_STATUS = _code("status")
_CLINICAL = _token("clinicalStatus")

# Per type, the parameters besides the member (PDex and the US Core 3.1.1 SHALL searches).
SEARCHABLE: Mapping[str, Mapping[str, _Param]] = {
    "AllergyIntolerance": {"clinical-status": _CLINICAL},
    "CarePlan": {"category": _token("category"), "status": _STATUS, "date": _date("period")},
    "CareTeam": {"status": _STATUS},
    "Condition": {
        "category": _token("category"),
        "code": _token("code"),
        "clinical-status": _CLINICAL,
        "onset-date": _date("onsetDateTime", "onsetPeriod"),
    },
    "Coverage": {"status": _STATUS},
    "Device": {"type": _token("type")},
    "DiagnosticReport": {
        "category": _token("category"),
        "code": _token("code"),
        "status": _STATUS,
        "date": _date("effectiveDateTime", "effectivePeriod"),
    },
    "DocumentReference": {
        "category": _token("category"),
        "type": _token("type"),
        "status": _STATUS,
        "date": _date("date"),
    },
    "Encounter": {
        "class": _token("class"),
        "type": _token("type"),
        "status": _STATUS,
        "date": _date("period"),
    },
    "ExplanationOfBenefit": {
        "_profile": _Param("uri", ("meta.profile",)),
        "type": _token("type"),
        "status": _STATUS,
        "created": _date("created"),
        "service-date": _date("billablePeriod", "item.servicedDate", "item.servicedPeriod"),
    },
    "Goal": {"lifecycle-status": _code("lifecycleStatus")},
    "Immunization": {"status": _STATUS, "date": _date("occurrenceDateTime")},
    "MedicationDispense": {"status": _STATUS},
    "MedicationRequest": {
        "intent": _code("intent"),
        "status": _STATUS,
        "authoredon": _date("authoredOn"),
    },
    "Observation": {
        "category": _token("category"),
        "code": _token("code"),
        "status": _STATUS,
        "date": _date("effectiveDateTime", "effectivePeriod", "effectiveInstant"),
    },
    "Procedure": {
        "code": _token("code"),
        "status": _STATUS,
        "date": _date("performedDateTime", "performedPeriod"),
    },
}
# The parameter naming the member, per type: ``patient`` everywhere, and Coverage's own.
MEMBER_PARAMS: Mapping[str, tuple[str, ...]] = {"Coverage": ("beneficiary", "patient")}

# ``_include`` values each type takes (US Core 3.1.1 requires the medication ones), with
# the element whose references they follow. What they reach goes only where the member's
# consent releases it with the records.
INCLUDES: Mapping[str, Mapping[str, str]] = {
    "MedicationRequest": {"MedicationRequest:medication": "medicationReference"},
    "MedicationDispense": {"MedicationDispense:medication": "medicationReference"},
    "ExplanationOfBenefit": {
        "ExplanationOfBenefit:provider": "provider",
        "ExplanationOfBenefit:insurer": "insurer",
    },
    "Encounter": {"Encounter:service-provider": "serviceProvider"},
}
_DATE_PREFIXES = ("eq", "ge", "le", "gt", "lt")


@dataclass(frozen=True)
class Filter:
    """One parameter as given: a resource matches when any value matches."""

    name: str
    param: _Param
    values: tuple[str, ...]

    def matches(self, resource: Resource) -> bool:
        found = [v for path in self.param.paths for v in values_at(resource, path)]
        return any(_matches(self.param.kind, value, found) for value in self.values)


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str
    patient_id: MemberId
    filters: tuple[Filter, ...]
    count: int
    revinclude_provenance: bool
    includes: tuple[str, ...] = ()  # the elements whose references _include follows

    def matches(self, resource: Resource) -> bool:
        """Every parameter matches (repeated ones too: they AND)."""
        return all(f.matches(resource) for f in self.filters)


def parse_search(
    resource_type: str, params: Iterable[tuple[str, str]], *, max_count: int
) -> SearchQuery:
    """A search of ``resource_type`` within one member's records; InvalidInput (400)
    naming every parameter that is unknown, unsupported, modified or malformed."""
    supported = SEARCHABLE.get(resource_type)
    if supported is None:
        raise InvalidInput(
            f"{resource_type[:64]} cannot be searched here",
            issues=[Issue(f"searchable types: {', '.join(sorted(SEARCHABLE))}, Patient",
                          resource_type[:64], "not-supported")],
        )  # fmt: skip
    member_params = MEMBER_PARAMS.get(resource_type, ("patient",))
    issues: list[Issue] = []
    patient: str | None = None
    filters: list[Filter] = []
    count = max_count
    revinclude = False
    includes: list[str] = []
    for name, value in params:
        base, _, modifier = name.partition(":")
        if modifier and not (base in member_params and modifier == "Patient"):
            issues.append(Issue(f"{name[:64]}: modifiers are not supported", name[:64],
                                "not-supported"))  # fmt: skip
        elif base in member_params:
            member = value.removeprefix("Patient/")
            if patient is not None and member != patient:
                issues.append(Issue(f"{base} may name one member", base, "invalid"))
            elif not member or "/" in member or "," in member:
                issues.append(Issue(f"{base} must be a Patient id or Patient/id", base, "invalid"))
            patient = member
        elif name == "_count":
            if not value.isdigit() or not 1 <= int(value) <= max_count:
                issues.append(Issue(f"_count must be a whole number from 1 to {max_count}",
                                    "_count", "invalid"))  # fmt: skip
            else:
                count = int(value)
        elif name == "_revinclude":
            if value != "Provenance:target":
                issues.append(Issue("_revinclude supports Provenance:target only",
                                    "_revinclude", "not-supported"))  # fmt: skip
            revinclude = True
        elif name == "_include":
            offered = INCLUDES.get(resource_type, {})
            if value not in offered:
                issues.append(Issue(f"_include {value[:64]} is not supported for "
                                    f"{resource_type} (supported: "
                                    f"{', '.join(offered) or 'none'})", "_include",
                                    "not-supported"))  # fmt: skip
            else:
                includes.append(offered[value])
        elif name in supported:
            param = supported[name]
            values = tuple(v for v in value.split(",") if v)
            bad = [v for v in values if not _valid(param.kind, v)]
            if not values or bad:
                issues.append(Issue(f"{name}: '{(bad or [''])[0][:64]}' is not a valid "
                                    f"{param.kind} value", name, "invalid"))  # fmt: skip
            filters.append(Filter(name, param, values))
        else:
            extras = ["_count", "_revinclude", *(["_include"] if resource_type in INCLUDES else [])]
            accepted = ", ".join([*member_params, *supported, *extras])
            issues.append(Issue(f"{name[:64]} is not a supported parameter of "
                                f"{resource_type} searches (supported: {accepted})",
                                name[:64], "not-supported"))  # fmt: skip
    if patient is None and not issues:
        issues.append(Issue(f"{member_params[0]} is required: a search is within one "
                            "member's records", member_params[0], "required"))  # fmt: skip
    if issues:
        raise InvalidInput(f"the {resource_type} search is not valid", issues=issues)
    assert patient is not None
    return SearchQuery(
        resource_type,
        MemberId(patient),
        tuple(filters),
        count,
        revinclude,
        tuple(dict.fromkeys(includes)),
    )


@dataclass(frozen=True)
class PatientQuery:
    """``Patient?identifier=`` (the UMB from $member-match) and/or ``_id``."""

    identifier: tuple[str | None, str] | None  # (system or None for any, value)
    resource_id: str | None
    revinclude_provenance: bool


def parse_patient_search(params: Iterable[tuple[str, str]]) -> PatientQuery:
    """InvalidInput (400) naming every parameter that is unknown, repeated or malformed."""
    issues: list[Issue] = []
    given: dict[str, str] = {}
    for name, value in params:
        if name not in ("identifier", "_id", "_revinclude"):
            issues.append(Issue(f"{name[:64]} is not a supported parameter of Patient "
                                "searches (supported: identifier, _id, _revinclude)",
                                name[:64], "not-supported"))  # fmt: skip
        elif name in given:
            issues.append(Issue(f"{name} may be given once", name, "invalid"))
        elif not value or "," in value:
            issues.append(Issue(f"{name} needs one value", name, "invalid"))
        elif name == "_revinclude" and value != "Provenance:target":
            issues.append(Issue("_revinclude supports Provenance:target only", name,
                                "not-supported"))  # fmt: skip
        given[name] = value
    if not issues and "identifier" not in given and "_id" not in given:
        issues.append(Issue("give identifier=[system|]value or _id", "identifier", "required"))
    if issues:
        raise InvalidInput("the Patient search is not valid", issues=issues)
    identifier = None
    if "identifier" in given:
        system, bar, value = given["identifier"].rpartition("|")
        identifier = (system or None, value) if bar else (None, given["identifier"])
    return PatientQuery(identifier, given.get("_id"), "_revinclude" in given)


# -- values


def _valid(kind: str, value: str) -> bool:
    if kind == "date":
        return _date_range(value) is not None
    return bool(value.strip())


def _matches(kind: str, value: str, found: list[Any]) -> bool:
    if kind == "code":
        return value in (v for v in found if isinstance(v, str))
    if kind == "uri":
        return value in (v for v in found if isinstance(v, str))
    if kind == "token":
        system, _, code = value.rpartition("|") if "|" in value else ("", "", value)
        return any(
            c.get("code") == code and (not system or c.get("system") == system)
            for c in codings(found)
        )
    return _date_matches(value, found)


def _date_matches(value: str, found: list[Any]) -> bool:
    prefix = value[:2] if value[:2] in _DATE_PREFIXES else "eq"
    wanted = _date_range(value)
    assert wanted is not None  # checked when parsed
    for item in found:
        span = span_of(item)
        if span is None:
            continue
        start, end = span
        if prefix == "eq" and wanted[0] <= start and end <= wanted[1]:
            return True
        if prefix == "ge" and end > wanted[0]:
            return True
        if prefix == "gt" and end > wanted[1]:
            return True
        if prefix == "le" and start < wanted[1]:
            return True
        if prefix == "lt" and start < wanted[0]:
            return True
    return False


def span_of(item: Any) -> tuple[datetime, datetime] | None:
    """The instants a date, dateTime or Period covers, as [start, end): a partial date
    covers its whole year or month, a Period without an end is ongoing."""
    if isinstance(item, str):
        return _range_of(item)
    if isinstance(item, Mapping):
        start = _range_of(item["start"]) if isinstance(item.get("start"), str) else None
        end = _range_of(item["end"]) if isinstance(item.get("end"), str) else None
        if start is None and end is None:
            return None
        low = start[0] if start else datetime.min.replace(tzinfo=UTC)
        high = end[1] if end else datetime.max.replace(tzinfo=UTC)
        return low, high
    return None


def _date_range(value: str) -> tuple[datetime, datetime] | None:
    text = value[2:] if value[:2] in _DATE_PREFIXES else value
    return _range_of(text)


def _range_of(text: str) -> tuple[datetime, datetime] | None:
    """The span a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD) or dateTime stands for."""
    try:
        if len(text) == 4 and text.isdigit():
            start = datetime(int(text), 1, 1, tzinfo=UTC)
            return start, start.replace(year=start.year + 1)
        if len(text) == 7 and text[4] == "-":
            start = datetime(int(text[:4]), int(text[5:]), 1, tzinfo=UTC)
            following = (start + timedelta(days=32)).replace(day=1)
            return start, following
        if len(text) == 10:
            start = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return start, start + timedelta(days=1)
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if instant.tzinfo is None:
        return None
    return instant, instant + timedelta(seconds=1)
