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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from payerbridge.exchange.received.reconcile import Holder, differing_paths
from payerbridge.fhir.resources import rewrite_references

__all__ = [
    "DEMOGRAPHIC_FIELDS",
    "Difference",
    "demographic_differences",
    "member_patient_id",
    "repoint",
    "source_patient",
]

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
    person; no ``replaces``, since the source record is not retired)."""
    kept = dict(patient)
    links = [
        link
        for link in kept.get("link", [])
        if isinstance(link, dict) and link.get("type") != "seealso"
    ]
    links.append({"other": {"reference": f"Patient/{member_patient}"}, "type": "seealso"})
    kept["link"] = links
    return kept


@dataclass(frozen=True)
class Difference:
    """Two sources' Patients that say differently about one demographic field: the paths
    and the sources (NPIs, or "plan"), never the values."""

    field: str
    paths: tuple[str, ...]
    sources: tuple[str, ...]

    @property
    def is_identity(self) -> bool:
        """Birth date or gender: may be another person, not a move."""
        return self.field in _IDENTITY_FIELDS

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "paths": list(self.paths),
            "sources": list(self.sources),
            "identity": self.is_identity,
        }


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
        for n, (a_src, a) in enumerate(ordered):
            for b_src, b in ordered[n + 1 :]:
                diff = differing_paths({name: a.get(name)}, {name: b.get(name)})
                if diff:
                    paths.update(diff)
                    sources.update((a_src, b_src))
        if paths:
            found.append(Difference(name, tuple(sorted(paths)[:20]), tuple(sorted(sources))))
    return found
