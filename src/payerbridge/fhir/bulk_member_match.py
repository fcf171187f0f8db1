"""PDex ``$bulk-member-match``: reading the request, and writing the result Groups.

Request (``pdex-parameters-multi-member-match-bundle-in``): one ``MemberBundle`` per
member, whose parts are those of HRex ``$member-match`` (MemberPatient, CoverageToMatch,
an optional CoverageToLink) plus a Consent, which bulk requires (1..1). Each bundle is
checked as a single request is; one ``InvalidInput`` names every issue of every bundle,
each located in its bundle. The submitted Patients' ids must differ: the result Groups
contain the Patients under the ids they were submitted with, and refer to them by id.

Result: up to three Groups coded from ``PdexMultiMemberMatchResultCS``: MatchedMembers,
always, even empty (its id is what the requester exports), then NonMatchedMembers and
ConsentConstrainedMembers when they have members. Each member's submitted Patient is
contained with its id, identifiers and demographics as submitted, without
``meta.versionId``, ``meta.lastUpdated``, ``meta.security`` or contained resources of its
own (§pdex-150..151a). A matched member's entry refers to our Patient, the others' to the
contained one; the ``matchedMember`` / ``nonMatchedMember`` extension points at the
contained Patient either way, and ``matchedCoverage`` at the contained CoverageToMatch
when one Patient was submitted with several coverages (§pdex-153). Why a member's consent
could not be honoured never appears in a Group (§pdex-156).

PDex 2.2 delivers the Groups as Group NDJSON; 2.1 as one Parameters
(``pdex-parameters-multi-member-match-bundle-out``) wrapping them (``parameters_form``),
under the names 2.1's profile fixes, which are not 2.2's (``PARAMETER_NAMES``).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from payerbridge.errors import InvalidInput, Issue
from payerbridge.fhir import codes
from payerbridge.fhir.member_match import (
    MemberMatchInput,
    parse_member_match_request,
    require_parameters,
)
from payerbridge.fhir.provenance import organization_reference
from payerbridge.routing.model import Organization
from payerbridge.timestamps import utc_iso

__all__ = [
    "BULK_MEMBER_MATCH_OPERATION",
    "BulkMember",
    "GroupAnswer",
    "MatchResult",
    "MemberResult",
    "PARAMETER_NAMES",
    "parameters_form",
    "profiled_groups",
    "matched_group_id",
    "member_bundle",
    "parse_bulk_member_match_request",
    "read_result_groups",
    "result_groups",
]

_PDEX = "http://hl7.org/fhir/us/davinci-pdex"
BULK_MEMBER_MATCH_OPERATION = f"{_PDEX}/OperationDefinition/BulkMemberMatch"
RESULT_SYSTEM = f"{_PDEX}/CodeSystem/PdexMultiMemberMatchResultCS"
_MATCH_GROUP_PROFILE = f"{_PDEX}/StructureDefinition/pdex-member-match-group"
_NO_MATCH_GROUP_PROFILE = f"{_PDEX}/StructureDefinition/pdex-member-no-match-group"
_BUNDLE_OUT_PROFILE = f"{_PDEX}/StructureDefinition/pdex-parameters-multi-member-match-bundle-out"
_MATCH_PARAMETERS = f"{_PDEX}/StructureDefinition/base-ext-match-parameters"
_MATCH_COVERAGE = f"{_PDEX}/StructureDefinition/base-ext-match-coverage"
_STRIPPED_META = ("versionId", "lastUpdated", "security")


class MatchResult(StrEnum):
    """A member's bucket, coded as ``PdexMultiMemberMatchResultCS`` codes it."""

    MATCHED = "match"
    NOT_MATCHED = "nomatch"
    CONSENT_CONSTRAINED = "consentconstraint"


# Per bucket: the code's display, the Group's name, its profile.
_BUCKETS = {
    MatchResult.MATCHED: ("Matched", "Matched Members", _MATCH_GROUP_PROFILE),
    MatchResult.NOT_MATCHED: ("Not Matched", "Non-Matched Members", _NO_MATCH_GROUP_PROFILE),
    MatchResult.CONSENT_CONSTRAINED: (
        "Consent Constraint",
        "Consent Constrained Members",
        _NO_MATCH_GROUP_PROFILE,
    ),
}
# The Parameters' names for the Groups, per PDex version: 2.1.0's bundle-out profile fixes
# them (ResourceIdentifier, NoMatch, ConsentConstraint); 2.2's OperationDefinition names
# its outputs MatchedMembers, NonMatchedMembers, ConsentConstrainedMembers.
PARAMETER_NAMES = {
    "2.1": {
        MatchResult.MATCHED: "ResourceIdentifier",
        MatchResult.NOT_MATCHED: "NoMatch",
        MatchResult.CONSENT_CONSTRAINED: "ConsentConstraint",
    },
    "2.2": {
        MatchResult.MATCHED: "MatchedMembers",
        MatchResult.NOT_MATCHED: "NonMatchedMembers",
        MatchResult.CONSENT_CONSTRAINED: "ConsentConstrainedMembers",
    },
}


@dataclass(frozen=True)
class BulkMember:
    """One MemberBundle: its position in the request, and its parts (Consent included)."""

    position: int
    request: MemberMatchInput

    @property
    def patient_id(self) -> str:
        return str(self.request.patient["id"])


@dataclass(frozen=True)
class MemberResult:
    """What became of one member; ``patient_id`` is our Patient's id when matched."""

    member: BulkMember
    result: MatchResult
    patient_id: str | None = None

    def __post_init__(self) -> None:
        if (self.result is MatchResult.MATCHED) != (self.patient_id is not None):
            raise ValueError("a matched member names our Patient, and only a matched one")


def parse_bulk_member_match_request(
    body: Any, operation: str = "$bulk-member-match"
) -> tuple[BulkMember, ...]:
    """Check every MemberBundle as a ``$member-match`` request with its Consent required
    (``$provider-member-match``'s: the provider's attestation); one InvalidInput names
    every issue, each prefixed with its bundle's position."""
    require_parameters(body, operation)
    parameters = body.get("parameter")
    if not isinstance(parameters, list) or not parameters:
        raise InvalidInput(
            f"{operation} needs at least one MemberBundle parameter",
            issues=[Issue("Parameters.parameter needs a MemberBundle", "Parameters", "required")],
        )
    members: list[BulkMember] = []
    issues: list[Issue] = []
    for position, parameter in enumerate(parameters):
        where = f"Parameters.parameter[{position}]"
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if name != "MemberBundle":
            issues.append(
                Issue(
                    f"unknown parameter '{name}'; {operation} accepts only MemberBundle",
                    f"{where}.name",
                )
            )
            continue
        parts = parameter.get("part")
        if not isinstance(parts, list):
            issues.append(Issue("MemberBundle needs its parts", f"{where}.part", "required"))
            continue
        try:
            request = parse_member_match_request({"resourceType": "Parameters", "parameter": parts})
        except InvalidInput as invalid:
            issues.extend(_in_bundle(issue, position) for issue in invalid.issues)
            continue
        if request.consent is None:
            issues.append(
                Issue(
                    f"MemberBundle {position}: part 'Consent' is required in bulk "
                    "(pdex-parameters-multi-member-match-bundle-in)",
                    f"{where}.part",
                    "required",
                )
            )
            continue
        members.append(BulkMember(position, request))
    issues.extend(_repeated_patient_ids(members))
    if issues:
        raise InvalidInput(f"the {operation} request is not valid", issues=issues)
    return tuple(members)


def _in_bundle(issue: Issue, position: int) -> Issue:
    """A single request's issue, located in MemberBundle ``position``."""
    expression = issue.expression or ""
    if expression.startswith("Parameters.parameter"):
        expression = (
            f"Parameters.parameter[{position}].part{expression[len('Parameters.parameter') :]}"
        )
    else:
        expression = f"Parameters.parameter[{position}].part.{expression}".rstrip(".")
    return Issue(f"MemberBundle {position}: {issue.text}", expression, issue.code)


def _repeated_patient_ids(members: Sequence[BulkMember]) -> list[Issue]:
    """The Groups contain the submitted Patients under their own ids (§pdex-150): two
    different Patients under one id could not both be contained. One Patient submitted
    again with another coverage is one member asked about twice (§pdex-153)."""
    by_id: dict[str, list[BulkMember]] = {}
    for member in members:
        by_id.setdefault(member.patient_id, []).append(member)
    issues = []
    for patient_id, sharing in by_id.items():
        submitted = {json.dumps(m.request.patient, sort_keys=True) for m in sharing}
        if len(submitted) > 1:
            positions = ", ".join(str(m.position) for m in sharing)
            issues.append(
                Issue(
                    f"MemberBundles {positions} submit different Patients with one id "
                    f"'{patient_id}'; give each member's Patient its own id",
                    "Parameters.parameter",
                )
            )
    return issues


def result_groups(
    results: Sequence[MemberResult],
    *,
    group_ids: Mapping[MatchResult, str],
    requester: Organization,
    us: Organization,
    matched_at: datetime,
) -> list[dict[str, Any]]:
    """MatchedMembers (always) and the other Groups that have members, in that order,
    authored (``meta.lastUpdated``) at ``matched_at``."""
    profiles = {bucket: profile for bucket, (_, _, profile) in _BUCKETS.items()}
    return profiled_groups(results, group_ids, GroupAnswer(requester, us, matched_at), profiles)


def profiled_groups(
    results: Sequence[MemberResult],
    group_ids: Mapping[MatchResult, str],
    answer: GroupAnswer,
    profiles: Mapping[MatchResult, str],
) -> list[dict[str, Any]]:
    """``result_groups`` under other profiles (``$provider-member-match``'s), by bucket."""
    groups = []
    for bucket in MatchResult:
        chosen = [r for r in results if r.result is bucket]
        if chosen or bucket is MatchResult.MATCHED:
            groups.append(_group(bucket, chosen, group_ids[bucket], answer, profiles[bucket]))
    return groups


@dataclass(frozen=True)
class GroupAnswer:
    """Who the Groups answer (the requester), who answers (us), and when the members
    were matched."""

    requester: Organization
    us: Organization
    matched_at: datetime


def _group(
    bucket: MatchResult,
    results: Sequence[MemberResult],
    group_id: str,
    answer: GroupAnswer,
    profile: str,
) -> dict[str, Any]:
    requester, us, matched_at = answer.requester, answer.us, answer.matched_at
    display, name, _ = _BUCKETS[bucket]
    coding = {"system": RESULT_SYSTEM, "code": bucket.value, "display": display}
    contained: dict[str, dict[str, Any]] = {}
    members = []
    coverages_per_patient = Counter(r.member.patient_id for r in results)
    for result in results:
        patient_id = result.member.patient_id
        contained.setdefault(patient_id, _without_meta(result.member.request.patient))
        extensions = [
            {
                "url": _MATCH_PARAMETERS,
                "valueReference": {"reference": f"#{patient_id}"},
            }
        ]
        if coverages_per_patient[patient_id] > 1:  # the coverage tells the entries apart
            coverage = _without_meta(result.member.request.coverage_to_match)
            coverage_id = coverage.get("id") or f"{patient_id}-coverage-{result.member.position}"
            coverage["id"] = coverage_id
            contained.setdefault(coverage_id, coverage)
            extensions.append(
                {"url": _MATCH_COVERAGE, "valueReference": {"reference": f"#{coverage_id}"}}
            )
        reference = (
            f"Patient/{result.patient_id}" if result.patient_id is not None else f"#{patient_id}"
        )
        members.append({"entity": {"extension": extensions, "reference": reference}})
    group: dict[str, Any] = {
        "resourceType": "Group",
        "id": group_id,
        "meta": {"profile": [profile], "lastUpdated": utc_iso(matched_at)},
    }
    if contained:
        group["contained"] = list(contained.values())
    group.update(
        {
            "identifier": [{"system": codes.NPI_SYSTEM, "value": requester.npi}],
            "type": "person",
            "actual": True,
            "code": {"coding": [coding]},
            "name": name,
            "managingEntity": organization_reference(us),
            "characteristic": [
                {
                    "code": {"coding": [coding]},
                    "valueReference": {
                        "identifier": {"system": codes.NPI_SYSTEM, "value": requester.npi}
                    },
                    "exclude": False,
                    "period": {"start": matched_at.date().isoformat()},
                }
            ],
            "quantity": len(members),
        }
    )
    if members:
        group["member"] = members
    return group


def _without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    """The submitted resource as the Group may contain it (§pdex-151a): a new top level
    and meta; what is below them is shared with ``resource``, never changed."""
    kept = {key: value for key, value in resource.items() if key != "contained"}
    meta = kept.get("meta")
    if isinstance(meta, dict):
        meta = {key: value for key, value in meta.items() if key not in _STRIPPED_META}
        if meta:
            kept["meta"] = meta
        else:
            kept.pop("meta")
    return kept


def parameters_form(groups: Sequence[dict[str, Any]], pdex: str) -> dict[str, Any]:
    """The Groups wrapped in one Parameters, each under its name in PDex ``pdex`` ("2.1":
    the whole answer there; "2.2": the optional backward-compatible file)."""
    names = PARAMETER_NAMES[pdex]
    return {
        "resourceType": "Parameters",
        "meta": {"profile": [_BUNDLE_OUT_PROFILE]},
        "parameter": [
            {"name": names[MatchResult(group["code"]["coding"][0]["code"])], "resource": group}
            for group in groups
        ],
    }


def member_bundle(parameters: dict[str, Any], patient_id: str) -> dict[str, Any]:
    """A ``$member-match`` request's Parameters as one MemberBundle, its MemberPatient
    submitted as ``patient_id`` and every reference to it pointed there (a bulk request's
    Patients must differ by id: the Groups name them by it)."""
    old = f"Patient/{_member_patient(parameters).get('id')}"

    def repoint(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: f"Patient/{patient_id}"
                if key == "reference" and value == old
                else repoint(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [repoint(item) for item in node]
        return node

    parts = repoint(copy.deepcopy(parameters["parameter"]))
    for part in parts:
        if part.get("name") == "MemberPatient":
            part["resource"]["id"] = patient_id
    return {"name": "MemberBundle", "part": parts}


def _member_patient(parameters: dict[str, Any]) -> dict[str, Any]:
    for part in parameters.get("parameter") or []:
        if part.get("name") == "MemberPatient" and isinstance(part.get("resource"), dict):
            return dict(part["resource"])
    raise ValueError("the Parameters carry no MemberPatient")


def _answer_groups(resources: Sequence[Any]) -> list[Any]:
    """The Groups of an answer given as Groups (PDex 2.2) or wrapped in Parameters (2.1)."""
    groups: list[Any] = []
    for resource in resources:
        if isinstance(resource, dict) and resource.get("resourceType") == "Parameters":
            groups.extend(p.get("resource") for p in resource.get("parameter") or [])
        else:
            groups.append(resource)
    return groups


def matched_group_id(resources: Sequence[Any]) -> str | None:
    """The id of the answer's MatchedMembers Group when it has members (what is exported)."""
    return next(
        (
            str(group["id"])
            for group in _answer_groups(resources)
            if isinstance(group, dict)
            and group.get("member")
            and any(
                c.get("system") == RESULT_SYSTEM and c.get("code") == MatchResult.MATCHED
                for c in (group.get("code") or {}).get("coding") or []
            )
        ),
        None,
    )


def read_result_groups(resources: Sequence[Any]) -> list[tuple[str, MatchResult, str | None]]:
    """What a ``$bulk-member-match`` answer says of each submitted Patient: its id as
    submitted, its bucket and, when matched, the responder's Patient id. ``resources``
    are the Groups (PDex 2.2) or the Parameters wrapping them (2.1). A Group we cannot
    read raises ValueError naming what is wrong."""
    found: list[tuple[str, MatchResult, str | None]] = []
    for group in _answer_groups(resources):
        if not isinstance(group, dict) or group.get("resourceType") != "Group":
            raise ValueError("a result is not a Group")
        codings = (group.get("code") or {}).get("coding") or []
        try:
            bucket = MatchResult(
                next(c["code"] for c in codings if c.get("system") == RESULT_SYSTEM)
            )
        except (StopIteration, KeyError, ValueError) as exc:
            raise ValueError("a result Group has no PdexMultiMemberMatchResultCS code") from exc
        for member in group.get("member") or []:
            entity = member.get("entity") or {}
            submitted = next(
                (
                    str(e.get("valueReference", {}).get("reference", "")).removeprefix("#")
                    for e in entity.get("extension") or []
                    if e.get("url") == _MATCH_PARAMETERS
                ),
                None,
            )
            reference = str(entity.get("reference") or "")
            if submitted is None and reference.startswith("#"):
                submitted = reference[1:]
            if not submitted:
                raise ValueError("a Group member names no submitted Patient")
            ours = reference.removeprefix("Patient/") if reference.startswith("Patient/") else None
            found.append((submitted, bucket, ours if bucket is MatchResult.MATCHED else None))
    return found
