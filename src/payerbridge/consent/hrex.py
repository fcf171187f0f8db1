"""The HRex Consent on the wire (digest §1.3): validating one we receive, building one we send.

``parse_hrex_consent`` checks everything the HRex Consent profile fixes (1.0.0 and
1.1.0 agree on the structure; we take 1.1.0's single policy) plus the two business
rules of mm-1: a source actor is this payer and a recipient actor is the caller, both
by NPI. It reports every problem at once, one ``Issue`` per element, and never echoes
a value other than an organization NPI.

Period bounds are FHIR ``dateTime``. A date-only or partial bound (``2026``,
``2026-07``, ``2026-07-01``) covers whole days in ``zone``: a start from the first
instant of its first day, an end through the last instant of its last day. A bound
with a time is that instant (FHIR requires its offset). Both ends are inclusive.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from payerbridge.consent.model import (
    ConsentPolicy,
    PresentedConsent,
    Requester,
    end_of_day,
    require_aware,
    start_of_day,
)
from payerbridge.errors import Issue, UnprocessableRequest
from payerbridge.fhir import codes
from payerbridge.fhir.provenance import organization_reference
from payerbridge.routing.model import Organization

__all__ = ["Provision", "build_hrex_consent", "consent_hash", "parse_hrex_consent"]

_CONSENT_SCOPE = ("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy")
_DISCLOSURE = ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "IDSCL")
_DISCLOSE = ("http://terminology.hl7.org/CodeSystem/consentaction", "disclose")
_SOURCE_ROLE = (codes.PROVENANCE_PARTICIPANT, "performer")
_RECIPIENT_ROLE = ("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP")
_POLICY_BY_URI = {uri: ConsentPolicy(name) for name, uri in codes.CONSENT_POLICY.items()}
_PERFORMER_TYPES = frozenset(
    {"Patient", "RelatedPerson", "Practitioner", "PractitionerRole", "Organization"}
)
# HRex 0..0: "Consent rules are expressed solely in policy".
_FORBIDDEN_PROVISION = (
    "securityLabel",
    "purpose",
    "class",
    "code",
    "dataPeriod",
    "data",
    "provision",
)
# FHIR R4 dateTime: a year, a month, a day, or a time with seconds and a required offset.
_DATE_TIME = re.compile(
    r"(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(?P<time>T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?)?)?",
    re.ASCII,
)


def consent_hash(resource: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (keys sorted): the stored record names what it came from."""
    return hashlib.sha256(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)).hexdigest()


class _Problems(list[Issue]):
    """The issues found so far, with the two shapes most of them take."""

    def required(self, expression: str, what: str) -> None:
        text = f"{expression} is required: the HRex Consent needs {what}"
        self.append(Issue(text, expression, "required"))

    def wrong(self, expression: str, text: str, code: str = "value") -> None:
        self.append(Issue(text, expression, code))


def parse_hrex_consent(
    resource: Any, *, our_npi: str, requester: Requester, zone: ZoneInfo
) -> PresentedConsent:
    """Validate an HRex Consent sent to us; raise UnprocessableRequest naming every bad element.

    ``zone`` is where date-only period bounds are read: this payer's configured zone.
    """
    if not isinstance(resource, dict) or resource.get("resourceType") != "Consent":
        raise UnprocessableRequest(
            "a Consent resource is required",
            issues=[Issue("expected a Consent resource", "Consent", "structure")],
        )
    problems = _Problems()
    _check_header(resource, problems)
    performer = _performer(resource, problems)
    source_reference = _source_reference(resource, problems)
    policy = _policy(resource, problems)
    provision = resource.get("provision")
    period = None
    recipients: list[str] = []
    if isinstance(provision, dict):
        _check_provision(provision, problems)
        period = _period(provision.get("period"), zone, problems)
        sources, recipients = _actors(resource, provision, problems)
        _check_parties(sources, recipients, our_npi, requester.npi, problems)
    else:
        problems.required("Consent.provision", "a provision")
    if problems or not (policy and period and performer and source_reference):
        raise UnprocessableRequest("the Consent is not a valid HRex Consent", issues=problems)
    return PresentedConsent(
        policy=policy,
        period_start=period[0],
        period_end=period[1],
        source_npi=our_npi,
        recipient_npis=tuple(dict.fromkeys(recipients)),
        client_id=requester.client_id,
        performer=performer,
        source_reference=source_reference,
        resource_hash=consent_hash(resource),
        resource=resource,
    )


# -- the checks, each adding to the problems


def _has_coding(concept: Any, system_code: tuple[str, str]) -> bool:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return isinstance(codings, list) and any(
        isinstance(c, dict) and (c.get("system"), c.get("code")) == system_code for c in codings
    )


def _check_header(resource: dict[str, Any], problems: _Problems) -> None:
    status = resource.get("status")
    if status is None:
        problems.required("Consent.status", "status 'active'")
    elif status != "active":
        problems.wrong("Consent.status", "Consent.status must be 'active'")
    scope = resource.get("scope")
    if scope is None:
        problems.required("Consent.scope", "scope {}#{}".format(*_CONSENT_SCOPE))
    elif not _has_coding(scope, _CONSENT_SCOPE):
        problems.wrong("Consent.scope", "Consent.scope must be {}#{}".format(*_CONSENT_SCOPE))
    categories = resource.get("category")
    if not isinstance(categories, list) or not any(_has_coding(c, _DISCLOSURE) for c in categories):
        problems.required("Consent.category", "a category {}#{}".format(*_DISCLOSURE))
    patient = resource.get("patient")
    if not isinstance(patient, dict) or not (patient.get("reference") or patient.get("identifier")):
        problems.required("Consent.patient", "a reference to the member's Patient")


def _contained(resource: dict[str, Any], reference: str) -> dict[str, Any] | None:
    for contained in resource.get("contained") or []:
        if isinstance(contained, dict) and f"#{contained.get('id')}" == reference:
            return contained
    return None


def _reference_type(resource: dict[str, Any], reference: dict[str, Any]) -> str | None:
    """The resource type a Reference points at, when it can be told."""
    literal = reference.get("reference")
    if isinstance(literal, str) and literal.startswith("#"):
        target = _contained(resource, literal)
        return target.get("resourceType") if target else None
    if isinstance(literal, str) and "/" in literal:
        parts = literal.split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        return parts[-2] if len(parts) >= 2 else None
    declared = reference.get("type")
    return declared if isinstance(declared, str) else None


def _performer(resource: dict[str, Any], problems: _Problems) -> str | None:
    performers = resource.get("performer")
    if not isinstance(performers, list) or not performers:
        problems.required("Consent.performer", "the person who gave the consent")
        return None
    if len(performers) > 1:
        problems.wrong(
            "Consent.performer", "Consent.performer must have exactly one entry", "structure"
        )
        return None
    performer = performers[0]
    literal = performer.get("reference") if isinstance(performer, dict) else None
    if not isinstance(literal, str) or not literal:
        problems.required("Consent.performer.reference", "a reference to who gave the consent")
        return None
    if _reference_type(resource, performer) not in _PERFORMER_TYPES:
        problems.wrong(
            "Consent.performer.reference",
            "Consent.performer must refer to a Patient, RelatedPerson, Practitioner, "
            "PractitionerRole or Organization (a contained one is fine)",
        )
        return None
    return literal


def _source_reference(resource: dict[str, Any], problems: _Problems) -> str | None:
    reference = resource.get("sourceReference")
    literal = reference.get("reference") if isinstance(reference, dict) else None
    if "sourceAttachment" in resource and reference is None:
        problems.wrong(
            "Consent.sourceAttachment",
            "HRex allows only Consent.sourceReference to a DocumentReference, not an attachment",
        )
        return None
    if not isinstance(reference, dict) or not (literal or reference.get("identifier")):
        problems.required("Consent.sourceReference", "a reference to the signed consent document")
        return None
    if _reference_type(resource, reference) not in (None, "DocumentReference"):
        problems.wrong(
            "Consent.sourceReference", "Consent.sourceReference must refer to a DocumentReference"
        )
        return None
    if isinstance(literal, str) and literal:
        return literal
    identifier = reference.get("identifier")  # a logical reference: keep system|value
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        return f"{identifier.get('system') or ''}|{identifier['value']}"
    problems.required("Consent.sourceReference.identifier.value", "the document identifier")
    return None


def _policy(resource: dict[str, Any], problems: _Problems) -> ConsentPolicy | None:
    policies = resource.get("policy")
    if not isinstance(policies, list) or not policies:
        problems.required("Consent.policy", "one policy, #regular or #sensitive")
        return None
    if len(policies) > 1:
        text = "Consent.policy must have exactly one entry: #regular or #sensitive"
        problems.wrong("Consent.policy", text, "structure")
        return None
    uri = policies[0].get("uri") if isinstance(policies[0], dict) else None
    if uri is None:
        problems.required("Consent.policy[0].uri", "the policy URI")
        return None
    if uri not in _POLICY_BY_URI:
        text = "Consent.policy.uri must be one of " + ", ".join(_POLICY_BY_URI)
        problems.wrong("Consent.policy[0].uri", text, "code-invalid")
        return None
    return _POLICY_BY_URI[uri]


def _check_provision(provision: dict[str, Any], problems: _Problems) -> None:
    kind = provision.get("type")
    if kind is None:
        problems.required("Consent.provision.type", "provision type 'permit'")
    elif kind != "permit":
        problems.wrong("Consent.provision.type", "Consent.provision.type must be 'permit'")
    actions = provision.get("action")
    where = "Consent.provision.action"
    if not isinstance(actions, list) or not actions:
        problems.required(where, "action {}#{}".format(*_DISCLOSE))
    elif len(actions) > 1:
        problems.wrong(where, f"{where} must have exactly one entry", "structure")
    elif not _has_coding(actions[0], _DISCLOSE):
        problems.wrong(where, "{} must be {}#{}".format(where, *_DISCLOSE))
    for name in _FORBIDDEN_PROVISION:
        if name in provision:
            where = f"Consent.provision.{name}"
            text = f"{where} must be absent: HRex expresses consent rules solely in policy"
            problems.wrong(where, text, "structure")


def _instant(value: Any, zone: ZoneInfo, *, end: bool) -> datetime | None:
    """A FHIR dateTime as the first (start) or last (end) instant it covers, in UTC."""
    match = _DATE_TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    try:
        if match["time"]:
            return datetime.fromisoformat(value).astimezone(UTC)
        year = int(match["year"])
        month = int(match["month"] or (12 if end else 1))
        day = date(year, month, int(match["day"] or 1))
        if end and not match["day"]:  # through the last day of the month or year
            day = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    except ValueError:
        return None
    return end_of_day(day, zone) if end else start_of_day(day, zone)


def _period(period: Any, zone: ZoneInfo, problems: _Problems) -> tuple[datetime, datetime] | None:
    where = "Consent.provision.period"
    if not isinstance(period, dict):
        problems.required(where, "a period with start and end")
        return None
    bounds: list[datetime | None] = []
    for name in ("start", "end"):
        value = period.get(name)
        instant = _instant(value, zone, end=name == "end")
        if value is None:
            problems.required(f"{where}.{name}", f"a period {name}")
        elif instant is None:
            text = (
                f"{where}.{name} must be a FHIR dateTime: a date, or a time with seconds and offset"
            )
            problems.wrong(f"{where}.{name}", text)
        bounds.append(instant)
    start, end = bounds
    if start is None or end is None:
        return None
    if end < start:
        problems.wrong(where, f"{where}.end must not be before its start", "invariant")
        return None
    return start, end


def _npi_of(resource: dict[str, Any], reference: Any) -> str | None:
    """The NPI of the Organization a Reference names: by identifier, or a contained one."""
    if not isinstance(reference, dict) or reference.get("type") not in (None, "Organization"):
        return None
    identifiers: Any = reference.get("identifier")
    literal = reference.get("reference")
    if isinstance(literal, str) and literal.startswith("#"):
        target = _contained(resource, literal) or {}
        if target.get("resourceType") != "Organization":
            return None
        identifiers = target.get("identifier")
    for identifier in identifiers if isinstance(identifiers, list) else [identifiers]:
        if isinstance(identifier, dict) and identifier.get("system") == codes.NPI_SYSTEM:
            value = identifier.get("value")
            if isinstance(value, str) and value:
                return value
    return None


def _actors(
    resource: dict[str, Any], provision: dict[str, Any], problems: _Problems
) -> tuple[list[str], list[str]]:
    """The NPIs of the source and the recipient actors (open slicing by role)."""
    actors = provision.get("actor")
    found: dict[str, list[str]] = {}
    for index, actor in enumerate(actors if isinstance(actors, list) else []):
        role = actor.get("role") if isinstance(actor, dict) else None
        slice_name = (
            "source"
            if _has_coding(role, _SOURCE_ROLE)
            else "recipient"
            if _has_coding(role, _RECIPIENT_ROLE)
            else None
        )
        if slice_name is None:
            continue  # other roles are allowed and mean nothing to us
        npis = found.setdefault(slice_name, [])
        npi = _npi_of(resource, actor.get("reference"))
        if npi is None:
            text = (
                f"the {slice_name} actor must identify an Organization by NPI "
                f"({codes.NPI_SYSTEM}), by identifier or as a contained Organization"
            )
            problems.wrong(f"Consent.provision.actor[{index}].reference", text)
        else:
            npis.append(npi)
    for slice_name, role in (("source", _SOURCE_ROLE), ("recipient", _RECIPIENT_ROLE)):
        if slice_name not in found:
            what = "a {} actor with role {}#{}".format(slice_name, *role)
            problems.required("Consent.provision.actor", what)
    return found.get("source", []), found.get("recipient", [])


def _check_parties(
    sources: list[str], recipients: list[str], our_npi: str, their_npi: str, problems: _Problems
) -> None:
    """HRex mm-1: the performer payer is us and the recipient is the caller."""
    where = "Consent.provision.actor"
    if sources and our_npi not in sources:
        text = (
            f"no source actor is this payer (NPI {our_npi}): the consent does not let it disclose"
        )
        problems.wrong(where, text, "business-rule")
    if recipients and their_npi not in recipients:
        text = (
            f"no recipient actor is the requesting organization (NPI {their_npi}): "
            "the consent does not let it receive the data"
        )
        problems.wrong(where, text, "business-rule")


def _date_time(value: date | datetime, name: str) -> str:
    if isinstance(value, datetime):
        require_aware(value, name)
    return value.isoformat()


@dataclass(frozen=True)
class Provision:
    """What a Consent permits: ``source`` may disclose to ``recipient`` under ``policy``,
    from ``start`` to ``end``."""

    policy: ConsentPolicy
    start: date | datetime
    end: date | datetime
    source: Organization
    recipient: Organization


def build_hrex_consent(
    *,
    consent_id: str,
    patient_ref: str,
    performer_ref: str,
    provision: Provision,
    source_reference: str,
) -> dict[str, Any]:
    """The HRex Consent a requesting payer sends: the provision's source may disclose to
    its recipient.

    Dates go date-only (whole days, read in the discloser's zone); aware datetimes go
    with their offset. Raises ValueError for a naive datetime or a period that ends
    before it starts.
    """
    start, end, policy = provision.start, provision.end, provision.policy
    source, recipient = provision.source, provision.recipient
    rendered_start, rendered_end = _date_time(start, "start"), _date_time(end, "end")
    # Read in UTC only to compare the bounds; the receiver reads dates in its own zone.
    first = _instant(rendered_start, ZoneInfo("UTC"), end=False)
    last = _instant(rendered_end, ZoneInfo("UTC"), end=True)
    if first is None or last is None or last < first:
        raise ValueError("the consent period must end on or after its start")

    def coded(system_code: tuple[str, str]) -> dict[str, Any]:
        return {"coding": [{"system": system_code[0], "code": system_code[1]}]}

    return {
        "resourceType": "Consent",
        "id": consent_id,
        "meta": {"profile": [codes.HREX_CONSENT_PROFILE]},
        "status": "active",
        "scope": coded(_CONSENT_SCOPE),
        "category": [coded(_DISCLOSURE)],
        "patient": {"reference": patient_ref},
        "performer": [{"reference": performer_ref}],
        "sourceReference": {"reference": source_reference},
        "policy": [{"uri": codes.CONSENT_POLICY[ConsentPolicy(policy).value]}],
        "provision": {
            "type": "permit",
            "period": {"start": rendered_start, "end": rendered_end},
            "actor": [
                {"role": coded(_SOURCE_ROLE), "reference": organization_reference(source)},
                {"role": coded(_RECIPIENT_ROLE), "reference": organization_reference(recipient)},
            ],
            "action": [coded(_DISCLOSE)],
        },
    }
