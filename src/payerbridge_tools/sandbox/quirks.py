"""A plan's FHIR server population with the quirks real Patient Access servers have
(pure, seeded): the sandbox population of one old payer, bent out of conformance the
way such servers bend it, each quirk drawn per resource from the seed.

- Labs coded in the plan's own code system (``LOCAL_LABS``), not LOINC, and often
  without their ``laboratory`` category.
- The member number under the plan's own identifier system, without its ``MB`` type;
  no UMB identifier.
- Dates in other forms: ``2021-3-5`` (no leading zeros), dateTimes without a time
  zone, dateTimes cut to a date, a Coverage period in ``MM/DD/CCYY``.
- Optional elements missing (telecom, verificationStatus), references to
  practitioners and organizations as a display only (the server does not serve them).
- Now and then a required element missing (an Observation's ``status``): what a
  mapping must not invent, and the profile check must quarantine.

Every resource carries ``meta.lastUpdated`` (from its own date), as a server sets it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import date
from typing import Any

from payerbridge_tools.population import build_network, generate_payer_population
from payerbridge_tools.population.clinical_codes import LABS

__all__ = [
    "LOCAL_LABS",
    "LOCAL_LAB_CODES",
    "MEMBER_SYSTEM",
    "SERVED_TYPES",
    "last_updated_of",
    "quirky_population",
]

Resource = dict[str, Any]

LOCAL_LABS = "http://plan.example/fhir/CodeSystem/local-labs"
MEMBER_SYSTEM = "http://plan.example/fhir/sid/member-id"
# The plan's lab codes, by the LOINC code they stand for.
LOCAL_LAB_CODES = {
    LABS["a1c"][0]: ("A1C", "HbA1c"),
    LABS["cholesterol"][0]: ("CHOL", "Cholesterol, total"),
    LABS["glucose"][0]: ("GLU", "Glucose, fasting"),
    LABS["creatinine"][0]: ("CREAT", "Creatinine, serum"),
    LABS["tsh"][0]: ("TSH", "TSH"),
}
SERVED_TYPES = (
    "Patient",
    "Coverage",
    "Condition",
    "Observation",
    "MedicationRequest",
    "Encounter",
    "Procedure",
    "Immunization",
    "AllergyIntolerance",
)
_DATE_FIELDS = (
    "effectiveDateTime",
    "onsetDateTime",
    "authoredOn",
    "performedDateTime",
    "occurrenceDateTime",
    "recordedDate",
)
_ZONE = re.compile(r"(Z|[+-]\d{2}:\d{2})$")


def quirky_population(
    members: int, seed: int, as_of: date, *, payer: int = 0, payers: int = 1
) -> Iterator[Resource]:
    """The served resources of ``members`` members of the old payer ``payer`` (its
    index) in a sandbox network of ``payers`` old payers (the first of one by default),
    with their quirks; the same arguments give the same resources."""
    network = build_network(payers)
    names: dict[str, str] = {}
    chosen = network.payers[payer]
    for resource in generate_payer_population(network, chosen, members, seed, as_of):
        kind = resource["resourceType"]
        if kind in ("Practitioner", "Organization"):
            names[f"{kind}/{resource['id']}"] = _name_of(resource)
            continue
        if kind not in SERVED_TYPES:
            continue
        rng = random.Random(f"{seed}:{kind}:{resource['id']}")
        quirked = _QUIRKS[kind](resource, rng, names)
        quirked["meta"] = {"versionId": "1", "lastUpdated": last_updated_of(quirked, as_of)}
        yield quirked


def last_updated_of(resource: Resource, as_of: date) -> str:
    """When a server would say it last changed: on its own date, else ``as_of``."""
    for name in _DATE_FIELDS:
        value = resource.get(name)
        if isinstance(value, str) and len(value) >= 8:
            return f"{_padded(value[:10])}T12:00:00Z"
    start = (resource.get("period") or {}).get("start")
    if isinstance(start, str) and re.match(r"\d{4}-", start):
        return f"{start[:10]}T12:00:00Z"
    return f"{as_of.isoformat()}T12:00:00Z"


def _padded(text: str) -> str:
    m = re.match(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
    return f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}" if m else text[:10]


def _name_of(resource: Resource) -> str:
    name = resource.get("name")
    if isinstance(name, str):
        return name
    first = (name or [{}])[0]
    return " ".join([*first.get("prefix", []), *first.get("given", []), first.get("family", "")])


def _unpadded(value: str) -> str:
    """``2021-03-05`` as some servers write it: ``2021-3-5``."""
    y, m, d = value[:10].split("-")
    return f"{y}-{int(m)}-{int(d)}"


def _zoneless(value: str) -> str:
    return _ZONE.sub("", value)


def _redate(value: str, rng: random.Random, forms: tuple[float, float, float]) -> str:
    """A date or dateTime in another form: unpadded, without its zone, or cut to a date,
    with the chances ``forms``."""
    draw = rng.random()
    unpadded, zoneless, cut = forms
    if draw < unpadded:
        return _unpadded(value)
    if draw < unpadded + zoneless and "T" in value:
        return _zoneless(value)
    if draw < unpadded + zoneless + cut:
        return value[:10]
    return value


def _display_only(reference: Any, names: dict[str, str]) -> Any:
    if not isinstance(reference, dict) or "reference" not in reference:
        return reference
    target = reference["reference"]
    if target.startswith(("Practitioner/", "Organization/")):
        return {"display": names.get(target, reference.get("display", "unknown"))}
    return reference


def _patient(resource: Resource, rng: random.Random, names: dict[str, str]) -> Resource:
    out = dict(resource)
    member = [
        i for i in resource.get("identifier", []) if i.get("system", "").endswith("member-id")
    ]
    out["identifier"] = [{"system": MEMBER_SYSTEM, "value": i["value"]} for i in member]
    if rng.random() < 0.3 and "birthDate" in out:
        out["birthDate"] = _unpadded(out["birthDate"])
    if rng.random() < 0.3:
        out.pop("telecom", None)
    return out


def _coverage(resource: Resource, rng: random.Random, names: dict[str, str]) -> Resource:
    out = dict(resource)
    out["identifier"] = [
        {"system": MEMBER_SYSTEM, "value": i["value"]} for i in resource.get("identifier", [])
    ]
    out["payor"] = [
        {k: v for k, v in payor.items() if k != "reference"} for payor in resource["payor"]
    ]
    start = (out.get("period") or {}).get("start")
    if start and rng.random() < 0.5:
        y, m, d = start[:10].split("-")
        out["period"] = {**out["period"], "start": f"{m}/{d}/{y}"}
    return out


def _condition(resource: Resource, rng: random.Random, names: dict[str, str]) -> Resource:
    out = dict(resource)
    for name in ("onsetDateTime", "abatementDateTime", "recordedDate"):
        if name in out:
            out[name] = _redate(out[name], rng, (0.3, 0.4, 0.0))
    if rng.random() < 0.2:
        out.pop("verificationStatus", None)
    return out


def _observation(resource: Resource, rng: random.Random, names: dict[str, str]) -> Resource:
    out = dict(resource)
    coding = resource["code"]["coding"][0]
    local = LOCAL_LAB_CODES.get(coding["code"])
    if local is not None:
        out["code"] = {
            "coding": [{"system": LOCAL_LABS, "code": local[0], "display": local[1]}],
            "text": local[1],
        }
        if rng.random() < 0.3:
            out.pop("category", None)
    if "effectiveDateTime" in out:
        out["effectiveDateTime"] = _redate(out["effectiveDateTime"], rng, (0.0, 0.4, 0.2))
    if rng.random() < 0.03:
        out.pop("status", None)  # required, and not knowable: the profile check holds it
    return out


def _encounter(resource: Resource, rng: random.Random, names: dict[str, str]) -> Resource:
    out = dict(resource)
    if "period" in out and rng.random() < 0.5:
        out["period"] = {k: _zoneless(v) for k, v in out["period"].items()}
    out["participant"] = [
        {**p, "individual": _display_only(p.get("individual"), names)}
        for p in resource.get("participant", [])
    ]
    if "serviceProvider" in out:
        out["serviceProvider"] = _display_only(out["serviceProvider"], names)
    return out


def _medication_request(resource: Resource, rng: random.Random, names: dict[str, str]) -> Resource:
    out = dict(resource)
    if "requester" in out:
        out["requester"] = _display_only(out["requester"], names)
    if "authoredOn" in out:
        out["authoredOn"] = _redate(out["authoredOn"], rng, (0.0, 0.2, 0.4))
    return out


def _dated(name: str) -> Any:
    def quirk(resource: Resource, rng: random.Random, names: dict[str, str]) -> Resource:
        out = dict(resource)
        if name in out:
            out[name] = _redate(
                out[name], rng, (0.3, 0.3, 0.0) if len(out[name]) == 10 else (0.0, 0.5, 0.0)
            )
        for key in ("performer", "recorder", "asserter"):
            if key in out and isinstance(out[key], dict):
                out[key] = _display_only(out[key], names)
        return out

    return quirk


_QUIRKS = {
    "Patient": _patient,
    "Coverage": _coverage,
    "Condition": _condition,
    "Observation": _observation,
    "Encounter": _encounter,
    "MedicationRequest": _medication_request,
    "Procedure": _dated("performedDateTime"),
    "Immunization": _dated("occurrenceDateTime"),
    "AllergyIntolerance": _dated("recordedDate"),
}
