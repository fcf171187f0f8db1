"""Data segmentation under a ``regular`` consent (pure): withhold sensitive data and links to it.

A resource is sensitive when a :class:`~payerbridge.consent.categories.SensitiveCategory`
matches one of its ``meta.security`` labels, a term in its text (``consent.terms``: a
``code.text``, a display alone, a note, the narrative, a name) or any Coding anywhere
in it (extensions, components, values, ``supportingInfo``, ``serviceType``, contained
resources...), its system recognised however it is spelled and a code without a known system judged
against every set (``consent.recognition``).
Withholding then spreads along references that carry meaning:

- a resource whose medication, claim diagnosis or claim provider is withheld is
  withheld too (it states the same thing: an order for that drug, a claim for that
  diagnosis or from that program);
- with ``withhold_encounters_of_sensitive_care`` (the default) an Encounter is withheld
  when a withheld resource was recorded in it (``encounter``, ``item.encounter``,
  ``context``) or when its diagnosis or reason is withheld: the visit itself is the
  sensitive care. Off, such an Encounter is kept and only the reference is removed;
- a Provenance whose targets are all withheld is withheld;
- a 42 CFR Part 2 program (an Organization, Location, HealthcareService or
  PractitionerRole in a ``program_categories`` category: by its type, its identifier's
  type, its service codes or its name) is withheld with everything that refers to it
  (a visit there, a claim from it, its sites, services and roles, the Provenance it
  signed): that the member was there is what Part 2 protects. A Patient and another
  Organization (``partOf``: an org chart) are kept without the reference.

Kept resources lose every reference to withheld ones: a list entry that is such a
reference is removed; a repeating element (``Encounter.diagnosis``,
``Provenance.entity``, an extension) whose own single reference is withheld is removed
whole, since it describes the withheld resource; empty lists disappear; and the
narrative goes, because it may describe what was removed. Nothing is added to mark the
removal, so a response never reveals that something was withheld.

Resource types outside ``segmentable_types`` cannot be judged; ``segment`` withholds
them and reports them, and :func:`supported_policies` tells ``policy.evaluate`` that a
``regular`` request is consent-constrained (HRex mm-11).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from payerbridge.consent.categories import SHIPPED_CODE_SETS, CodeSets
from payerbridge.consent.model import ConsentPolicy
from payerbridge.consent.recognition import CategoryIndex, categories_and_json, categories_in
from payerbridge.fhir.resources import iter_references, references_of
from payerbridge.json_paths import ElementPath, element_path

__all__ = [
    "CLINICAL_TYPES",
    "DEFAULT_SEGMENTATION",
    "DEFAULT_SEGMENTABLE_TYPES",
    "Judgement",
    "Withheld",
    "NON_CLINICAL_TYPES",
    "PROGRAM_TYPES",
    "Resource",
    "SegmentResult",
    "SegmentationPolicy",
    "judge",
    "reference_key",
    "references_at",
    "segment",
    "withheld_among",
    "without_references",
    "sensitive_categories_of",
    "supported_policies",
    "unsegmentable_types",
]

Resource = dict[str, Any]
"""One FHIR R4 resource as parsed JSON."""

# The types segmentation judges by their codes and references.
CLINICAL_TYPES = frozenset(
    {
        "AllergyIntolerance",
        "Claim",
        "Condition",
        "Device",
        "DiagnosticReport",
        "Encounter",
        "ExplanationOfBenefit",
        "Immunization",
        "Medication",
        "MedicationDispense",
        "MedicationRequest",
        "Observation",
        "Procedure",
    }
)
# Types that carry no clinical meaning of their own: their labels and codes still apply
# (an opioid treatment program's type, an addiction specialist's qualification).
NON_CLINICAL_TYPES = frozenset(
    {
        "Coverage",
        "Location",
        "Organization",
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Provenance",
        "RelatedPerson",
    }
)
# CarePlan, CareTeam, Goal and DocumentReference hold free text and attachments that
# codes cannot judge, so they are not segmentable by default.
DEFAULT_SEGMENTABLE_TYPES = CLINICAL_TYPES | NON_CLINICAL_TYPES

# References whose target is what the referrer is about: withholding one withholds both.
_DEPENDENT_REFERENCES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "MedicationRequest": ("medicationReference",),
        "MedicationDispense": ("medicationReference",),
        "ExplanationOfBenefit": ("diagnosis.diagnosisReference", "provider"),
        "Claim": ("diagnosis.diagnosisReference", "provider"),
    }
)
# Types that can be a program or one of its sites or roles: withheld for a program
# category, with everything that refers to them.
PROGRAM_TYPES = frozenset({"HealthcareService", "Location", "Organization", "PractitionerRole"})
# Types kept without their reference to a program: the member, and another organization
# (a parent or a unit in an org chart is judged by what it is itself).
_KEEP_LINKS_TO_PROGRAMS = frozenset({"Patient", "Organization"})
_ENCOUNTER_REASONS = ("diagnosis.condition", "reasonReference")
_CARE_CONTEXT = ("encounter", "item.encounter", "context")
_PROVENANCE_TARGET = (element_path("target"),)
_DEPENDENT_PATHS = {
    resource_type: tuple(element_path(path) for path in paths)
    for resource_type, paths in _DEPENDENT_REFERENCES.items()
}
_ENCOUNTER_REASON_PATHS = tuple(element_path(path) for path in _ENCOUNTER_REASONS)
_CARE_CONTEXT_PATHS = tuple(element_path(path) for path in _CARE_CONTEXT)


@dataclass(frozen=True)
class SegmentationPolicy:
    """What counts as sensitive, where to look for it, and which types can be judged at all."""

    code_sets: CodeSets = SHIPPED_CODE_SETS
    segmentable_types: frozenset[str] = DEFAULT_SEGMENTABLE_TYPES
    withhold_encounters_of_sensitive_care: bool = True
    # Categories whose programs are withheld with everything that refers to them.
    program_categories: frozenset[str] = frozenset({"substance-use"})
    _index: CategoryIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", CategoryIndex(self.code_sets.categories))


@dataclass(frozen=True)
class SegmentResult:
    """The resources that may go, and counts for the audit trail (never for the requester)."""

    kept: list[Resource]
    withheld_count: int
    unsegmentable_types: frozenset[str]


DEFAULT_SEGMENTATION = SegmentationPolicy()  # the shipped code sets and rules


def unsegmentable_types(
    resource_types_present: Iterable[str], policy: SegmentationPolicy = DEFAULT_SEGMENTATION
) -> frozenset[str]:
    """The types present that this policy cannot judge."""
    return frozenset(resource_types_present) - policy.segmentable_types


def supported_policies(
    resource_types_present: Iterable[str], policy: SegmentationPolicy = DEFAULT_SEGMENTATION
) -> frozenset[ConsentPolicy]:
    """What ``policy.evaluate`` may permit for a member holding these types."""
    if unsegmentable_types(resource_types_present, policy):
        return frozenset({ConsentPolicy.SENSITIVE})
    return frozenset(ConsentPolicy)


def sensitive_categories_of(
    resource: Mapping[str, Any], policy: SegmentationPolicy = DEFAULT_SEGMENTATION
) -> frozenset[str]:
    """Names of the categories this resource (or one it contains) falls in, by label or code."""
    names = _category_names(resource, policy)
    return frozenset(names) if names else _NO_CATEGORIES


_NO_CATEGORIES: frozenset[str] = frozenset()


def _category_names(resource: Mapping[str, Any], policy: SegmentationPolicy) -> set[str]:
    """``sensitive_categories_of``, unfrozen: most resources fall in none, so no frozen
    set is built for them."""
    return categories_in(resource, policy._index)


def segment(
    resources: Sequence[Resource], policy: SegmentationPolicy = DEFAULT_SEGMENTATION
) -> SegmentResult:
    """The resources a ``regular`` consent lets go, stripped of references to the rest.

    Inputs are never mutated: unchanged resources are passed through, changed ones copied.
    """
    judged = [judge(resource, policy) for resource in resources]
    withheld = withheld_among(judged, policy)
    kept = [
        without_references(resource, withheld.keys)
        for index, resource in enumerate(resources)
        if index not in withheld.indexes
    ]
    return SegmentResult(kept, len(withheld.indexes), withheld.unsegmentable_types)


# -- which resources are withheld


@dataclass(frozen=True, slots=True)
class Judgement:
    """What segmentation needs to know of one resource, without the resource: a large
    compartment can be judged from these and then streamed, never held whole."""

    key: str | None
    resource_type: str
    sensitive: bool  # by its own labels or codes (or a contained resource's)
    # The resources it is about: withheld with any of them (with all, for a Provenance).
    about: tuple[str, ...]
    about_all: bool
    recorded_in: tuple[str, ...]  # the Encounters it was recorded in
    is_program: bool = False  # a program (PROGRAM_TYPES) in a program category
    refers_to: tuple[str, ...] = ()  # the programs, sites and roles it refers to


@dataclass(frozen=True)
class Withheld:
    indexes: frozenset[int]  # of the judgements, in the order given
    keys: frozenset[str]
    unsegmentable_types: frozenset[str]


def judge(
    resource: Mapping[str, Any],
    policy: SegmentationPolicy = DEFAULT_SEGMENTATION,
    raw: bytes | None = None,
    references: Sequence[str] | None = None,
) -> Judgement:
    """What withholding needs to know of ``resource``; ``raw`` (its JSON, ``json_of``)
    and ``references`` (every reference it holds, ``references_of``): when the caller
    has read them already."""
    resource_type = str(resource.get("resourceType"))
    if resource_type == "Provenance":
        about, about_all = tuple(_references(resource, _PROVENANCE_TARGET)), True
    else:
        paths = _DEPENDENT_PATHS.get(resource_type, ())
        if resource_type == "Encounter" and policy.withhold_encounters_of_sensitive_care:
            paths = _ENCOUNTER_REASON_PATHS
        about, about_all = tuple(_references(resource, paths)), False
    recorded_in = tuple(
        target
        for target in _references(resource, _CARE_CONTEXT_PATHS)
        if target.startswith("Encounter/")
    )
    names, raw = categories_and_json(resource, policy._index, raw)
    return Judgement(
        _key(resource),
        resource_type,
        bool(names),
        about,
        about_all,
        recorded_in,
        resource_type in PROGRAM_TYPES and not policy.program_categories.isdisjoint(names),
        _programs(references_of(resource, raw) if references is None else references),
    )


def _programs(references: Iterable[str]) -> tuple[str, ...]:
    """``Type/id`` of every program, site or role among ``references``."""
    found = []
    for reference in references:
        resource_type, _, rest = reference.partition("/")
        if rest and "/" not in rest and rest != "_history":  # a relative Type/id: its key
            if resource_type in PROGRAM_TYPES:
                found.append(reference)
            continue
        key = reference_key(reference)
        if key is not None and key.partition("/")[0] in PROGRAM_TYPES:
            found.append(key)
    return tuple(found)


def withheld_among(
    judged: Sequence[Judgement], policy: SegmentationPolicy = DEFAULT_SEGMENTATION
) -> Withheld:
    """Which of the judged resources a ``regular`` consent withholds: the sensitive and
    the unjudgeable, then along meaningful references until nothing changes."""
    unsegmentable = unsegmentable_types({j.resource_type for j in judged}, policy)
    withheld = {
        index for index, j in enumerate(judged) if j.resource_type in unsegmentable or j.sensitive
    }
    if not withheld:  # most members: nothing withheld, so nothing to spread from
        return Withheld(frozenset(), frozenset(), unsegmentable)
    by_key = {j.key: index for index, j in enumerate(judged) if j.key is not None}
    programs = {j.key for i in withheld if (j := judged[i]).is_program and j.key is not None}
    while True:  # each pass only adds
        keys = {k for i in withheld if (k := judged[i].key) is not None}
        spread = {
            index
            for index, j in enumerate(judged)
            if index not in withheld
            and (
                _about_withheld(j, keys)
                or (
                    j.resource_type not in _KEEP_LINKS_TO_PROGRAMS
                    and not programs.isdisjoint(j.refers_to)
                )
            )
        }
        if policy.withhold_encounters_of_sensitive_care:
            spread |= {
                by_key[target]
                for i in withheld
                for target in judged[i].recorded_in
                if target in by_key
            } - withheld
        if not spread:
            return Withheld(frozenset(withheld), frozenset(keys), unsegmentable)
        withheld |= spread
        # A site or role of a program is part of it: what refers to it is withheld too.
        programs |= {
            j.key
            for i in spread
            if (j := judged[i]).resource_type in PROGRAM_TYPES
            and j.key is not None
            and not programs.isdisjoint(j.refers_to)
        }


def _about_withheld(judgement: Judgement, withheld_keys: AbstractSet[str]) -> bool:
    if judgement.about_all:
        return bool(judgement.about) and all(t in withheld_keys for t in judgement.about)
    return any(target in withheld_keys for target in judgement.about)


def _key(resource: Mapping[str, Any]) -> str | None:
    resource_type, resource_id = resource.get("resourceType"), resource.get("id")
    if isinstance(resource_type, str) and isinstance(resource_id, str):
        return f"{resource_type}/{resource_id}"
    return None


def reference_key(reference: str) -> str | None:
    """``Type/id`` of a relative or absolute literal reference (history stripped)."""
    if reference.startswith(("#", "urn:")):
        return None  # contained, or a bundle-local id: not another stored resource
    parts = reference.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) < 2 or not parts[-2] or not parts[-1]:
        return None
    return f"{parts[-2]}/{parts[-1]}"


def references_at(resource: Mapping[str, Any], paths: Iterable[str]) -> Iterator[str]:
    """The ``Type/id`` each reference at ``paths`` names (relative or absolute, history
    stripped; contained and bundle-local ones left out)."""
    yield from _references(resource, (element_path(path) for path in paths))


def _references(resource: Mapping[str, Any], paths: Iterable[ElementPath]) -> list[str]:
    found: list[str] = []
    for path in paths:
        for value in path.values(resource):
            if type(value) is dict or isinstance(value, Mapping):
                reference = value.get("reference")
                if isinstance(reference, str):
                    key = reference_key(reference)
                    if key is not None:
                        found.append(key)
    return found


# -- removing references from kept resources


def without_references(resource: Resource, withheld_keys: AbstractSet[str]) -> Resource:
    """The resource without its references to withheld resources (a copy when changed)."""
    if not any(reference_key(ref) in withheld_keys for ref in iter_references(resource)):
        return resource  # the common case: nothing to strip, no copy
    stripped = _strip_element(resource, withheld_keys, in_list=False)
    assert stripped is not None  # a resource is never an entry of a list here
    if stripped is not resource:
        stripped.pop("text", None)  # the narrative may describe what was removed
    return stripped


def _is_withheld_reference(value: Any, withheld_keys: AbstractSet[str]) -> bool:
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("reference"), str)
        and reference_key(value["reference"]) in withheld_keys
    )


def _strip_element(
    element: Resource, withheld_keys: AbstractSet[str], *, in_list: bool
) -> Resource | None:
    """The element without withheld references; None when it must go as a whole.

    An entry of a repeating element that itself holds a withheld single reference
    (``Encounter.diagnosis.condition``, ``Provenance.entity.what``) goes as a whole:
    what is left would describe nothing, or something withheld.
    """
    result: Resource = {}
    changed = False
    for key, value in element.items():
        if _is_withheld_reference(value, withheld_keys):
            if in_list:
                return None
            changed = True
            continue
        new_value = value
        if isinstance(value, dict):
            new_value = _strip_element(value, withheld_keys, in_list=False)
            if not new_value:
                changed = True
                continue
        elif isinstance(value, list):
            # Contained resources are resources, not entries describing a reference.
            new_value = _strip_list(value, withheld_keys, entries=key != "contained")
            if not new_value:
                changed = True
                continue
        changed = changed or new_value is not value
        result[key] = new_value
    return result if changed else element


def _strip_list(items: list[Any], withheld_keys: AbstractSet[str], *, entries: bool) -> list[Any]:
    result: list[Any] = []
    changed = False
    for item in items:
        if _is_withheld_reference(item, withheld_keys):
            changed = True
            continue
        new_item = item
        if isinstance(item, dict):
            new_item = _strip_element(item, withheld_keys, in_list=entries)
            if new_item is None:
                changed = True
                continue
        changed = changed or new_item is not item
        result.append(new_item)
    return result if changed else items
