"""The HRex and PDex versions partners speak, as data (``routing/data/version-profiles.json``):
what a ``$member-match`` request and answer look like in each HRex version, and what
each PDex version expects after it (how the member is found, the bulk output form).

Pure. The requester sends the shape of the partner's version (the route decides it
from the partner's CapabilityStatement); our server answers in the shape the caller's
request names, and in a shape every version accepts when it names none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import orjson

__all__ = [
    "PROFILES",
    "MemberMatchShape",
    "PdexProfile",
    "VersionProfiles",
    "requested_shape",
]


@dataclass(frozen=True)
class MemberMatchShape:
    """The ``$member-match`` Parameters of one HRex version."""

    hrex: str
    parameters_profile: str  # versioned canonicals, put in meta.profile
    patient_profile: str
    coverage_profile: str
    consent_profile: str
    consent_required: bool
    coverage_to_link: frozenset[str]  # the CoverageToLink elements sent (mm-5)
    member_identifier_type: tuple[Mapping[str, str], ...]  # MemberIdentifier.type codings
    member_id: bool  # whether the answer may carry MemberId


@dataclass(frozen=True)
class PdexProfile:
    pdex: str
    hrex: str  # the HRex version it builds on
    bulk_output: str | None  # the $bulk-member-match output: None (no bulk), Parameters, Group


@dataclass(frozen=True)
class VersionProfiles:
    version: str
    hrex: Mapping[str, MemberMatchShape]
    pdex: Mapping[str, PdexProfile]
    current_hrex: str
    current_pdex: str

    @property
    def current(self) -> MemberMatchShape:
        return self.hrex[self.current_hrex]

    def for_partner(self, hrex: str | None, pdex: str | None) -> tuple[MemberMatchShape, str]:
        """The request shape for a partner declaring these versions (None: not declared
        or without a version), and why it was chosen."""
        if hrex is not None and hrex in self.hrex:
            return self.hrex[hrex], f"the partner declares HRex {hrex}"
        if pdex is not None and pdex in self.pdex:
            builds_on = self.pdex[pdex].hrex
            return self.hrex[builds_on], f"the partner declares PDex {pdex} (HRex {builds_on})"
        said = f"HRex {hrex}" if hrex else "no HRex version"
        return self.current, f"the partner declares {said}: the current shape is sent"


def requested_shape(body: Mapping[str, Any]) -> MemberMatchShape | None:
    """The HRex version a ``$member-match`` request names: by its Parameters profile with
    a version, else by a MemberPatient profiled as US Core Patient (HRex 1.0.0); None
    when it names none."""
    for profile in _profiles(body):
        url, _, version = profile.partition("|")
        shape = PROFILES.hrex.get(version)
        if shape is not None and shape.parameters_profile.partition("|")[0] == url:
            return shape
    for parameter in body.get("parameter") or []:
        if isinstance(parameter, Mapping) and parameter.get("name") == "MemberPatient":
            resource = parameter.get("resource")
            if isinstance(resource, Mapping) and any(
                p.partition("|")[0] == _US_CORE_PATIENT for p in _profiles(resource)
            ):
                return PROFILES.hrex["1.0.0"]
    return None


_US_CORE_PATIENT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"


def _profiles(resource: Mapping[str, Any]) -> list[str]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, Mapping) else None
    return [p for p in profiles if isinstance(p, str)] if isinstance(profiles, list) else []


def _load() -> VersionProfiles:
    data = orjson.loads(
        files("payerbridge.routing").joinpath("data/version-profiles.json").read_text()
    )
    shapes = {
        version: MemberMatchShape(
            hrex=version,
            parameters_profile=shape["parameters_profile"],
            patient_profile=shape["patient_profile"],
            coverage_profile=shape["coverage_profile"],
            consent_profile=shape["consent_profile"],
            consent_required=shape["consent_required"],
            coverage_to_link=frozenset(shape["coverage_to_link"]),
            member_identifier_type=tuple(shape["member_identifier_type"]),
            member_id=shape["member_id"],
        )
        for version, shape in data["hrex"].items()
    }
    pdex = {
        version: PdexProfile(version, p["hrex"], p["bulk_output"])
        for version, p in data["pdex"].items()
    }
    current = data["current"]
    return VersionProfiles(data["version"], shapes, pdex, current["hrex"], current["pdex"])


PROFILES = _load()
