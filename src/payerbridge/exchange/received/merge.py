"""One Patient per member at the plan: received resources re-pointed to it (pure).

Every old payer's data about a member (ADR 0029 source identities) is re-pointed to one
Patient at the plan (ADR 0054): the plan's own Patient when exactly one carries the
member identifier of the exchange's new coverage, else a Patient whose id derives from
the holder's member key (never from the old payer). Each old payer's Patient is kept as
a source record linked to it (``Patient.link`` ``seealso``); received demographics are
never written onto the one Patient, only compared and flagged (``Difference``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from payerbridge.exchange.received.normalize import NormalizedBundle
from payerbridge.exchange.received.reconcile import Conflict, Holder, differing_paths
from payerbridge.fhir import codes
from payerbridge.fhir.resources import rewrite_references

__all__ = [
    "DEMOGRAPHIC_FIELDS",
    "MEMBER_KEY",
    "Difference",
    "MemberChoice",
    "MemberFacts",
    "choose_member_patient",
    "demographic_differences",
    "identity_conflicts",
    "kept_under",
    "member_patient_id",
    "member_record",
    "merged",
    "repoint",
    "source_patient",
]

# The "identifier" identity conflicts are grouped by: the member itself (its key, hashed).
MEMBER_KEY = "urn:payerbridge:member-key"

# What a person is, compared between sources' Patients (FHIR R4 Patient elements).
DEMOGRAPHIC_FIELDS = ("name", "birthDate", "gender", "address", "telecom", "identifier")
# Differences that may mean another person, not a move: a person must look.
_IDENTITY_FIELDS = frozenset({"birthDate", "gender"})


def member_patient_id(holder: Holder, plan_patient_ids: Sequence[str]) -> tuple[str, str]:
    """Our one Patient's id for the holder's member and how it was chosen: the plan's own
    Patient when exactly one was found by exact member identifier ("plan"), else one
    derived from the member key ("derived-none" / "derived-ambiguous": fail closed)."""
    if len(plan_patient_ids) == 1:
        return plan_patient_ids[0], "plan"
    how = "derived-none" if not plan_patient_ids else "derived-ambiguous"
    digest = hashlib.sha256(f"{holder.member_key}\n#member".encode()).hexdigest()[:40]
    return digest, how


@dataclass(frozen=True)
class MemberFacts:
    """What the plan said of its member when it asked (the exchange request): its member
    id on the new card, birth date (ISO) and gender."""

    member_id: str
    birth_date: str
    gender: str | None


@dataclass(frozen=True)
class MemberChoice:
    """The one Patient an exchange's data is kept under, and how it was chosen: ``plan``
    (the plan's own Patient), ``derived-none`` (the plan holds none with the member id),
    ``derived-ambiguous`` (more than one agrees), ``derived-mismatch`` (those with the
    member id are another person: birth date or gender differ)."""

    patient_id: str
    how: str
    plan_patient: Mapping[str, Any] | None = None

    @property
    def is_plan(self) -> bool:
        return self.how == "plan"

    def to_json(self) -> dict[str, str]:
        return {"patient": f"Patient/{self.patient_id}", "how": self.how}


def _member_ids(patient: Mapping[str, Any]) -> set[str]:
    """The values of the Patient's member identifiers (typed v2-0203#MB)."""
    found = set()
    for identifier in patient.get("identifier") or ():
        if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str):
            continue
        kind = identifier.get("type")
        codings = kind.get("coding") if isinstance(kind, dict) else None
        if any(
            isinstance(c, dict) and c.get("system") == codes.V2_0203 and c.get("code") == "MB"
            for c in codings or ()
        ):
            found.add(identifier["value"])
    return found


def _agrees(patient: Mapping[str, Any], member: MemberFacts) -> bool:
    """Same birth date, and the same gender where both say one: the member id alone is
    shared by a family on many cards (a newborn on her sister's)."""
    if patient.get("birthDate") != member.birth_date:
        return False
    theirs, ours = patient.get("gender"), member.gender
    known = {"male", "female", "other"}
    return theirs not in known or ours not in known or theirs == ours


def choose_member_patient(
    holder: Holder, member: MemberFacts, found: Sequence[Mapping[str, Any]]
) -> MemberChoice:
    """Our one Patient for the member: the plan's own when exactly one of the plan's
    Patients ``found`` carries the member id (typed MB, exact value) and agrees on birth
    date and gender; else one derived from the member key (fail closed, ADR 0054)."""
    carriers = [p for p in found if member.member_id in _member_ids(p)]
    agreeing = [p for p in carriers if _agrees(p, member)]
    if len(agreeing) == 1 and isinstance(agreeing[0].get("id"), str):
        return MemberChoice(agreeing[0]["id"], "plan", agreeing[0])
    derived, _ = member_patient_id(holder, ())
    if not carriers:
        return MemberChoice(derived, "derived-none")
    return MemberChoice(derived, "derived-ambiguous" if agreeing else "derived-mismatch")


def member_record(choice: MemberChoice, facts: MemberFacts, system: str | None) -> dict[str, Any]:
    """Our Patient for a member the plan holds none for: what the plan said of its member
    (the member id, birth date and gender), tagged ours; the sources' demographics stay
    on their Patients, which link to it. The plan's FHIR server finds her by the same
    three (``delivery.bundle``)."""
    identifier: dict[str, Any] = {
        "type": {"coding": [{"system": codes.V2_0203, "code": "MB"}]},
        "value": facts.member_id,
    }
    if system:
        identifier["system"] = system
    record: dict[str, Any] = {
        "resourceType": "Patient",
        "id": choice.patient_id,
        "meta": {"tag": [{"system": codes.RECORD_ROLE, "code": "member"}]},
        "identifier": [identifier],
        "active": True,
        "birthDate": facts.birth_date,
    }
    if facts.gender:
        record["gender"] = facts.gender
    return record


def merged(
    normalized: NormalizedBundle, choice: MemberChoice, record: Mapping[str, Any] | None
) -> NormalizedBundle:
    """The answer kept under the one Patient (``kept_under``); ``record``: our Patient for
    the member, when the plan has none."""
    kept = kept_under(normalized.resources, normalized.patient_id, choice, record)
    return replace(normalized, resources=kept)


def kept_under(
    resources: Iterable[tuple[dict[str, Any], str | None]],
    source_patient_id: str,
    choice: MemberChoice,
    record: Mapping[str, Any] | None,
) -> list[tuple[dict[str, Any], str | None]]:
    """One member's resources from one old payer (an exchange's answer, or the member's
    share of an onboarding's export) kept under the one Patient: every resource in its
    compartment, every reference to the old payer's Patient (``source_patient_id``, our
    id of it) re-pointed to it, but Provenance (its targets name what it is about: the
    old payer's Patient among them) and the old payer's Patient itself, kept as a source
    record linked to it; ``record``: our Patient for the member, when the plan has none."""
    member = choice.patient_id
    sources = frozenset({source_patient_id})
    kept: list[tuple[dict[str, Any], str | None]] = []
    for resource, _ in resources:
        if resource["resourceType"] == "Provenance":
            one = dict(resource)
        elif resource["resourceType"] == "Patient" and resource.get("id") == source_patient_id:
            one = source_patient(resource, member)
        else:
            one = repoint(resource, sources, member)
        kept.append((one, member))
    if record is not None:
        kept.append((dict(record), member))
    return kept


def repoint(
    resource: Mapping[str, Any], source_patient_ids: frozenset[str], member_patient: str
) -> dict[str, Any]:
    """A copy of ``resource`` (ours, ADR 0029 ids) whose references to a source Patient
    (``Patient/<id>`` for an id in ``source_patient_ids``) point to ``member_patient``.
    Source Patients themselves are returned unchanged (they stay source records)."""
    target = f"Patient/{member_patient}"
    sources = {f"Patient/{i}" for i in source_patient_ids}
    if resource.get("resourceType") == "Patient" and resource.get("id") in source_patient_ids:
        return dict(resource)

    def rewrite(reference: str) -> str:
        return target if reference in sources else reference

    result: dict[str, Any] = rewrite_references(dict(resource), rewrite)
    return result


def source_patient(patient: Mapping[str, Any], member_patient: str) -> dict[str, Any]:
    """The old payer's Patient kept as a source record: linked ``seealso`` to the one
    Patient (FHIR R4 Patient.link: the other Patient holds information about the same
    person; no ``replaces``, since the source record is not retired), and tagged so
    (``record-role#source``): another payer gets the member's one Patient, not this."""
    kept = dict(patient)
    links = [
        link
        for link in kept.get("link", [])
        if isinstance(link, dict) and link.get("type") != "seealso"
    ]
    links.append({"other": {"reference": f"Patient/{member_patient}"}, "type": "seealso"})
    kept["link"] = links
    meta = dict(kept.get("meta") or {})
    tags = [
        t
        for t in meta.get("tag", [])
        if not (isinstance(t, dict) and t.get("system") == codes.RECORD_ROLE)
    ]
    meta["tag"] = [*tags, {"system": codes.RECORD_ROLE, "code": "source"}]
    kept["meta"] = meta
    return kept


@dataclass(frozen=True)
class Difference:
    """Two sources' Patients that say differently about one demographic field: the paths
    and the sources (NPIs, partner ids, or "plan"), never the values. ``is_identity``: a
    birth date or gender that both say and differ on, which may be another person, not a
    move (one source saying none is not evidence of another person)."""

    field: str
    paths: tuple[str, ...]
    sources: tuple[str, ...]
    is_identity: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "paths": list(self.paths),
            "sources": list(self.sources),
            "identity": self.is_identity,
        }


def identity_conflicts(
    differences: Sequence[Difference], refs: Mapping[str, str], member_key: str
) -> list[Conflict]:
    """The differences that may mean another person (birth date, gender) as conflicts
    about the member: ``refs`` names each source's Patient (source → our ref)."""
    return [
        Conflict(
            resource_type="Patient",
            identifier_system=MEMBER_KEY,
            identifier_sha256=member_key[:16],
            refs=tuple(sorted({refs[s] for s in d.sources if s in refs})),
            sources=d.sources,
            paths=d.paths,
        )
        for d in differences
        if d.is_identity
    ]


def demographic_differences(
    patients: Sequence[tuple[str, Mapping[str, Any]]],
) -> list[Difference]:
    """The demographic fields on which sources' Patients (source NPI or "plan", the
    Patient) differ, pairwise against the first of each source, sorted by field."""
    firsts: dict[str, Mapping[str, Any]] = {}
    for source, patient in patients:
        firsts.setdefault(source, patient)
    ordered = sorted(firsts.items())
    found: list[Difference] = []
    for name in DEMOGRAPHIC_FIELDS:
        paths: set[str] = set()
        sources: set[str] = set()
        identity = False
        for n, (a_src, a) in enumerate(ordered):
            for b_src, b in ordered[n + 1 :]:
                diff = differing_paths({name: a.get(name)}, {name: b.get(name)})
                if diff:
                    paths.update(diff)
                    sources.update((a_src, b_src))
                    both = a.get(name) is not None and b.get(name) is not None
                    identity = identity or (name in _IDENTITY_FIELDS and both)
        if paths:
            found.append(
                Difference(name, tuple(sorted(paths)[:20]), tuple(sorted(sources)), identity)
            )
    return found
