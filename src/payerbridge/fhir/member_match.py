"""HRex ``$member-match`` Parameters: reading a request, writing one, and the response shape.

Request: MemberPatient, CoverageToMatch, optional CoverageToLink and Consent (closed
slicing), written in the shape of the partner's HRex version (``routing.profiles``).
Response: in the shape the caller's request names; when it names none, a shape every
version accepts: ``MemberIdentifier`` typed both ``hrex-temp#UMB`` (HRex 1.1+) and
``v2-0203#MB`` (HRex 1.0.0 validators), and ``MemberId`` (PDex 2.2 SHOULD) unless
switched off.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

from payerbridge.errors import InvalidInput, Issue, PartnerRejected
from payerbridge.fhir import codes
from payerbridge.fhir.provenance import organization_reference
from payerbridge.members import CoverageCard, MemberDemographics
from payerbridge.routing.model import Organization
from payerbridge.routing.profiles import PROFILES, MemberMatchShape, requested_shape
from payerbridge.routing.wellknown import WELLKNOWN_EXTENSION

__all__ = [
    "member_id_system",
    "MEMBER_PATIENT_REF",
    "MemberMatchAsk",
    "MemberMatchInput",
    "MemberMatchResult",
    "build_member_match_request",
    "build_member_match_response",
    "parse_member_match_request",
    "parse_member_match_response",
    "require_parameters",
]

_ALLOWED = {
    "MemberPatient": "Patient",
    "CoverageToMatch": "Coverage",
    "CoverageToLink": "Coverage",
    "Consent": "Consent",
}
_REQUIRED = ("MemberPatient", "CoverageToMatch")
# The MemberPatient we send; HRex mm-6: the Coverages and the Consent point at it.
MEMBER_PATIENT_ID = "1"
MEMBER_PATIENT_REF = f"Patient/{MEMBER_PATIENT_ID}"


class MemberMatchAsk(Protocol):
    """What a request to match a member carries (an exchange's request, an onboarding's
    member): who she is, her id at our plan and the cards of both plans."""

    @property
    def member(self) -> MemberDemographics: ...

    @property
    def member_id(self) -> str: ...

    @property
    def old_coverage(self) -> CoverageCard: ...

    @property
    def new_coverage(self) -> CoverageCard: ...


@dataclass(frozen=True)
class MemberMatchInput:
    patient: dict[str, Any]
    coverage_to_match: dict[str, Any]
    coverage_to_link: dict[str, Any] | None
    consent: dict[str, Any] | None
    shape: MemberMatchShape | None = None  # the HRex version the request names, if any


@dataclass(frozen=True)
class MemberMatchResult:
    """What the old payer answered: the UMB and, when sent, the Patient id."""

    identifier_system: str | None
    identifier_value: str
    member_ref: str | None


def require_parameters(body: Any, operation: str) -> None:
    """Refuse a body that is not a Parameters resource, naming ``operation``."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        found = body.get("resourceType") if isinstance(body, dict) else type(body).__name__
        raise InvalidInput(
            f"{operation} expects a Parameters resource, got '{found}'",
            issues=[Issue(f"expected resourceType 'Parameters', got '{found}'", "resourceType")],
        )


def parse_member_match_request(body: Any, *, strict: bool = False) -> MemberMatchInput:
    """Check the structure and mm-6 references; one InvalidInput carries every issue.

    ``strict`` also enforces HRex 1.1's us-core-15 on CoverageToMatch (a member id
    typed MB or a subscriberId). Off by default: members often cannot give the old
    card's numbers, and the identity engine matches such requests on demographics."""
    require_parameters(body, "$member-match")
    parameters = body.get("parameter")
    if not isinstance(parameters, list):
        raise InvalidInput(
            "Parameters.parameter is required",
            issues=[Issue("Parameters.parameter is required", "Parameters.parameter", "required")],
        )
    issues: list[Issue] = []
    found_resources: dict[str, dict[str, Any]] = {}
    malformed: set[str] = set()
    for index, parameter in enumerate(parameters):
        where = f"Parameters.parameter[{index}]"
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if name not in _ALLOWED:
            issues.append(
                Issue(
                    f"unknown parameter '{name}'; $member-match accepts " + ", ".join(_ALLOWED),
                    f"{where}.name",
                )
            )
            continue
        if name in found_resources:
            issues.append(Issue(f"parameter '{name}' appears more than once", where))
            continue
        resource = parameter.get("resource")
        expected = _ALLOWED[name]
        if not isinstance(resource, dict) or resource.get("resourceType") != expected:
            malformed.add(name)
            issues.append(
                Issue(f"parameter '{name}' must carry a {expected} resource", f"{where}.resource")
            )
            continue
        found_resources[name] = resource
    for name in _REQUIRED:
        if name not in found_resources and name not in malformed:
            issues.append(
                Issue(f"parameter '{name}' is required", "Parameters.parameter", "required")
            )
    if "MemberPatient" in found_resources:
        issues.extend(_patient_issues(found_resources["MemberPatient"]))
        issues.extend(_reference_issues(found_resources))
    if strict and "CoverageToMatch" in found_resources:
        card = card_from_coverage(found_resources["CoverageToMatch"])
        if not card.member_id and not card.subscriber_id:
            issues.append(
                Issue(
                    "CoverageToMatch needs a member id (identifier typed MB) or a subscriberId "
                    "(us-core-15): this payer does not match on demographics alone",
                    "CoverageToMatch",
                    "required",
                )
            )
    shape = requested_shape(body)
    if shape is not None and shape.consent_required and "Consent" not in found_resources:
        issues.append(
            Issue(
                f"parameter 'Consent' is required by HRex {shape.hrex}, which this request "
                "names in meta.profile or by its MemberPatient's profile",
                "Parameters.parameter",
                "required",
            )
        )
    if issues:
        raise InvalidInput("the $member-match request is not valid", issues=issues)
    return MemberMatchInput(
        patient=found_resources["MemberPatient"],
        coverage_to_match=found_resources["CoverageToMatch"],
        coverage_to_link=found_resources.get("CoverageToLink"),
        consent=found_resources.get("Consent"),
        shape=shape,
    )


def _patient_issues(patient: dict[str, Any]) -> list[Issue]:
    issues = []
    names = patient.get("name")
    if not isinstance(names, list) or not any(
        isinstance(n, dict) and n.get("family") and n.get("given") for n in names
    ):
        issues.append(
            Issue(
                "MemberPatient needs a name with family and given", "MemberPatient.name", "required"
            )
        )
    if not isinstance(patient.get("birthDate"), str):
        issues.append(
            Issue("MemberPatient.birthDate is required", "MemberPatient.birthDate", "required")
        )
    if not isinstance(patient.get("id"), str):
        issues.append(
            Issue(
                "MemberPatient.id is required so that the coverages can reference it (HRex mm-6)",
                "MemberPatient.id",
                "required",
            )
        )
    return issues


def _reference_issues(found: dict[str, dict[str, Any]]) -> list[Issue]:
    """HRex mm-6: Coverage and Consent references are local and point at MemberPatient."""
    expected = f"Patient/{found['MemberPatient'].get('id')}"
    issues = []
    for name, element in (
        ("CoverageToMatch", "beneficiary"),
        ("CoverageToLink", "beneficiary"),
        ("Consent", "patient"),
    ):
        resource = found.get(name)
        if resource is None:
            continue
        reference = (resource.get(element) or {}).get("reference")
        if reference != expected:
            issues.append(
                Issue(
                    f"{name}.{element} must be the local reference '{expected}' to "
                    "MemberPatient (HRex mm-6)",
                    f"{name}.{element}.reference",
                )
            )
    return issues


def card_from_coverage(coverage: dict[str, Any]) -> CoverageCard:
    """The card data in a Coverage: the MB-typed identifier and the subscriber id."""
    member_id = None
    for identifier in coverage.get("identifier") or []:
        codings = ((identifier.get("type") or {}).get("coding")) or []
        if any(c.get("system") == codes.V2_0203 and c.get("code") == "MB" for c in codings):
            member_id = identifier.get("value")
            break
    relationship = "unknown"
    for coding in (coverage.get("relationship") or {}).get("coding") or []:
        relationship = coding.get("code") or relationship
    return CoverageCard(
        member_id=member_id, subscriber_id=coverage.get("subscriberId"), relationship=relationship
    )


def _coverage(
    card: CoverageCard,
    resource_id: str,
    payer: Organization,
    profile: str,
    elements: frozenset[str] | None = None,
) -> dict[str, Any]:
    """A Coverage of ``card``; ``elements``: only these (mm-5), else all we know."""
    coverage: dict[str, Any] = {
        "status": "active",
        "beneficiary": {"reference": MEMBER_PATIENT_REF},
        "relationship": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                    "code": card.relationship,
                }
            ]
        },
        "payor": [organization_reference(Organization(payer.name, payer.npi))],
    }
    if card.member_id:
        identifier: dict[str, Any] = {
            "type": {"coding": [{"system": codes.V2_0203, "code": "MB"}]},
            "value": card.member_id,
        }
        coverage["identifier"] = [identifier]
    if card.subscriber_id:
        coverage["subscriberId"] = card.subscriber_id
    if card.start:
        coverage["period"] = {"start": card.start.isoformat()}
    if elements is not None:
        coverage = {name: value for name, value in coverage.items() if name in elements}
    return {
        "resourceType": "Coverage",
        "id": resource_id,
        "meta": {"profile": [profile]},
    } | coverage


def member_id_system(us: Organization) -> str | None:
    """The system of our member ids: a NamingSystem at our FHIR base (none without one)."""
    return f"{us.fhir_base}/NamingSystem/member-id" if us.fhir_base else None


def build_member_match_request(
    request: MemberMatchAsk,
    consent: dict[str, Any],
    *,
    us: Organization,
    partner: Organization,
    shape: MemberMatchShape = PROFILES.current,
) -> dict[str, Any]:
    """The HRex Parameters ``us`` sends ``partner``, in ``shape``: always with the
    member's Consent (HRex 1.0.0 needs it), as captured with the opt-in
    (``exchange.intake.opt_in``), and with the member's id at our plan as MemberPatient's
    identifier in ``member_id_system(us)`` (US Core Patient, HRex 1.0.0's MemberPatient,
    needs one; HRex 1.1's is its ``umb`` slice)."""
    member_system = member_id_system(us)
    member = request.member
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": MEMBER_PATIENT_ID,
        "meta": {"profile": [shape.patient_profile]},
    }
    if member_system is not None and request.member_id:
        patient["identifier"] = [
            {
                "type": {"coding": [dict(c) for c in shape.member_identifier_type]},
                "system": member_system,
                "value": request.member_id,
            }
        ]
    patient |= {
        "name": [{"family": member.family, "given": list(member.given)}],
        "gender": member.gender,
        "birthDate": member.birth_date.isoformat(),
    }
    if member.address is not None:
        address: dict[str, Any] = {"line": list(member.address.lines)}
        for key, value in (
            ("city", member.address.city),
            ("state", member.address.state),
            ("postalCode", member.address.postal_code),
        ):
            if value:
                address[key] = value
        patient["address"] = [address]
    if member.phone:
        patient["telecom"] = [{"system": "phone", "value": member.phone}]
    to_match = _coverage(
        replace(request.old_coverage, start=None),  # the old card's dates are not asked
        "coverage-to-match",
        partner,
        shape.coverage_profile,
    )
    to_link = _coverage(
        request.new_coverage,
        "coverage-to-link",
        us,
        shape.coverage_profile,
        shape.coverage_to_link,
    )
    if us.wellknown and shape.hrex != "1.0.0":  # the extension came with HRex 1.1
        to_link["extension"] = [{"url": WELLKNOWN_EXTENSION, "valueUri": us.wellknown}]
    return {
        "resourceType": "Parameters",
        "meta": {"profile": [shape.parameters_profile]},
        "parameter": [
            {"name": "MemberPatient", "resource": patient},
            {"name": "CoverageToMatch", "resource": to_match},
            {"name": "CoverageToLink", "resource": to_link},
            {"name": "Consent", "resource": _profiled(consent, shape.consent_profile)},
        ],
    }


def _profiled(resource: dict[str, Any], profile: str) -> dict[str, Any]:
    return {**resource, "meta": {**(resource.get("meta") or {}), "profile": [profile]}}


def build_member_match_response(
    *,
    identifier_system: str,
    identifier_value: str,
    member_id: str | None,
    shape: MemberMatchShape | None = None,
) -> dict[str, Any]:
    """The answer in ``shape`` (the caller's HRex version), or, when the caller named
    none, typed for every version; ``MemberId`` only where the shape allows it."""
    if shape is None:
        types = [c for s in PROFILES.hrex.values() for c in s.member_identifier_type]
        codings = list({(c["system"], c["code"]): dict(c) for c in types}.values())
    else:
        codings = [dict(c) for c in shape.member_identifier_type]
        member_id = member_id if shape.member_id else None
    parameters: list[dict[str, Any]] = [
        {
            "name": "MemberIdentifier",
            "valueIdentifier": {
                "type": {"coding": sorted(codings, key=_umb_first)},
                "system": identifier_system,
                "value": identifier_value,
            },
        }
    ]
    if member_id is not None:
        parameters.append(
            {"name": "MemberId", "valueReference": {"reference": f"Patient/{member_id}"}}
        )
    return {"resourceType": "Parameters", "parameter": parameters}


def _umb_first(coding: dict[str, str]) -> bool:
    return coding["code"] != "UMB"


def parse_member_match_response(body: Any) -> MemberMatchResult:
    """Read either response form (HRex 1.0.0 MemberIdentifier only, or 1.1+ with MemberId)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise PartnerRejected("the partner's $member-match response is not a Parameters resource")
    identifier: dict[str, Any] | None = None
    member_ref: str | None = None
    for parameter in body.get("parameter") or []:
        if parameter.get("name") == "MemberIdentifier":
            identifier = parameter.get("valueIdentifier")
        elif parameter.get("name") == "MemberId":
            member_ref = (parameter.get("valueReference") or {}).get("reference")
    if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str):
        raise PartnerRejected("the partner's $member-match response has no MemberIdentifier value")
    return MemberMatchResult(identifier.get("system"), identifier["value"], member_ref)
