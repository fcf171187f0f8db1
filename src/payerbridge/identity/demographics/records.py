"""``record_from_fhir``: a FHIR R4 Patient (and its Coverage) as a ``StandardRecord``.

This is the only place in the identity engine that reads FHIR JSON, so FHIR
camelCase stays here. It is lenient: a value of the wrong shape is treated as
missing, never as an error, because the $member-match request has already been
validated at the edge and stored members are what the payer's own file holds.

What it reads:

* the current name (``official``, else ``usual``, else any name not marked
  ``old``, ``maiden`` or ended), its given names and suffixes; the families
  of the other names (maiden, old, previous official names) as previous
  surnames, so a married name still agrees with the maiden one;
* ``birthDate``; ``gender``, else the US Core birth sex extension;
* the home address (else the first current one) and its ZIP code;
* a phone (home, then mobile, then any);
* the member id: the Coverage identifier typed v2-0203#MB, else the
  Patient's (for stored members only); ``Coverage.subscriberId``;
* the SSN: the Patient identifier with system ``http://hl7.org/fhir/sid/us-ssn``
  (or typed v2-0203#SS). It is *carried* when it equals the subscriber's SSN
  (``subscriber_ssn``) and the Coverage says the patient is not the subscriber.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from payerbridge.identity.demographics.standardize import (
    Demographics,
    standard_record,
    standard_sex,
    standard_ssn,
)
from payerbridge.identity.model import StandardRecord

__all__ = ["current_coverage", "record_from_fhir", "ssn_of", "subscriber_ref"]

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
US_SSN = "http://hl7.org/fhir/sid/us-ssn"
BIRTH_SEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
_PAST_NAME_USES = frozenset({"old", "maiden"})
_NOT_A_PERSON_NAME = frozenset({"anonymous", "temp"})
_PHONE_USES = ("home", "mobile", None, "work")

FhirJson = Mapping[str, Any]


def record_from_fhir(
    patient: FhirJson,
    coverage: FhirJson | None = None,
    *,
    subscriber_ssn: str | None = None,
    member_id_from_patient: bool = True,
) -> StandardRecord:
    """Standardise a Patient, with the Coverage that carries its card identifiers.

    For a $member-match request pass ``member_id_from_patient=False``: the
    MemberPatient's identifiers are the requesting payer's (its new member
    id), not ours, and only CoverageToMatch carries our card's identifiers.
    """
    names = [n for n in _dicts(patient.get("name")) if n.get("use") not in _NOT_A_PERSON_NAME]
    current = _current_name(names)
    previous = [n.get("family") for n in names if n is not current and n.get("family")]
    own_ssn = ssn_of(patient)
    address = _address(patient)
    gender = _string(patient.get("gender"))
    return standard_record(
        Demographics(
            given=_strings(current.get("given")) if current else (),
            family=_string(current.get("family")) if current else None,
            previous_families=[f for f in previous if isinstance(f, str)],
            suffixes=_strings(current.get("suffix")) if current else (),
            birth_date=_string(patient.get("birthDate")),
            # gender "unknown" says nothing; birth sex may still say something.
            sex=gender if standard_sex(gender) else _birth_sex(patient),
            address_lines=_strings(address.get("line")),
            postal_code=_string(address.get("postalCode")),
            phone=_phone(patient),
            member_id=_member_id(coverage)
            or (_member_id(patient) if member_id_from_patient else None),
            subscriber_id=_string(coverage.get("subscriberId")) if coverage else None,
            ssn=own_ssn,
            ssn_carried=_is_carried(own_ssn, subscriber_ssn, coverage),
        )
    )


def _dicts(value: object) -> list[FhirJson]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _string(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _is_current(element: FhirJson) -> bool:
    period = element.get("period")
    return not (isinstance(period, Mapping) and period.get("end"))


def _current_name(names: list[FhirJson]) -> FhirJson | None:
    current = [n for n in names if n.get("use") not in _PAST_NAME_USES and _is_current(n)]
    for use in ("official", "usual"):
        for name in current:
            if name.get("use") == use:
                return name
    if current:
        return current[0]
    return names[0] if names else None


def _birth_sex(patient: FhirJson) -> str | None:
    for extension in _dicts(patient.get("extension")):
        if extension.get("url") == BIRTH_SEX:
            return _string(extension.get("valueCode"))
    return None


def _address(patient: FhirJson) -> FhirJson:
    addresses = [a for a in _dicts(patient.get("address")) if _is_current(a)]
    addresses = [a for a in addresses if a.get("use") != "old"]
    home = [a for a in addresses if a.get("use") == "home"]
    return (home or addresses or [{}])[0]


def _phone(patient: FhirJson) -> str | None:
    phones = [
        t
        for t in _dicts(patient.get("telecom"))
        if t.get("system") == "phone" and _is_current(t) and _string(t.get("value"))
    ]
    for use in _PHONE_USES:
        for telecom in phones:
            if telecom.get("use") == use:
                return _string(telecom.get("value"))
    return _string(phones[0].get("value")) if phones else None


def _has_type(identifier: FhirJson, code: str) -> bool:
    concept = identifier.get("type")
    codings = _dicts(concept.get("coding")) if isinstance(concept, Mapping) else []
    return any(c.get("system") == V2_0203 and c.get("code") == code for c in codings)


def _member_id(resource: FhirJson | None) -> str | None:
    if not resource:
        return None
    for identifier in _dicts(resource.get("identifier")):
        if _has_type(identifier, "MB") and _string(identifier.get("value")):
            return _string(identifier.get("value"))
    return None


def ssn_of(patient: FhirJson) -> str | None:
    for identifier in _dicts(patient.get("identifier")):
        if identifier.get("system") == US_SSN or _has_type(identifier, "SS"):
            value = _string(identifier.get("value"))
            if value:
                return value
    return None


def _relationship(coverage: FhirJson | None) -> str | None:
    concept = coverage.get("relationship") if coverage else None
    codings = _dicts(concept.get("coding")) if isinstance(concept, Mapping) else []
    return next((_string(c.get("code")) for c in codings if c.get("code")), None)


def _is_carried(own: str | None, subscriber: str | None, coverage: FhirJson | None) -> bool:
    if own is None or subscriber is None or _relationship(coverage) == "self":
        return False
    mine = standard_ssn(own)
    return mine is not None and mine == standard_ssn(subscriber)


def current_coverage(coverages: list[dict[str, Any]]) -> dict[str, Any]:
    """The member's coverage to match on: active first, then the latest start."""

    def rank(coverage: dict[str, Any]) -> tuple[bool, str, str]:
        start = (coverage.get("period") or {}).get("start") or ""
        return (coverage.get("status") == "active", str(start), str(coverage.get("id")))

    return max(coverages, key=rank)


def subscriber_ref(coverage: dict[str, Any]) -> str | None:
    """The Patient a coverage names as its subscriber, or None."""
    reference = (coverage.get("subscriber") or {}).get("reference")
    return reference if isinstance(reference, str) and reference.startswith("Patient/") else None
