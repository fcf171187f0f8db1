"""What may leave for one member under the consent policy that permits the caller: the
member's records and every shared resource they reach, judged together (pure but for
the reads it is given).

Segmentation judges a resource with what it refers to: a MedicationRequest for an HIV
antiretroviral is sensitive because of its Medication, a claim because its provider is
a 42 CFR Part 2 program. So the shared resources the records point at (Medication,
Organization, Practitioner, Location, ...), and those they point at in turn, are read
first and segmented in the same pass as the records; a shared resource that is left
referenced only by withheld records does not go either, since that it was referenced
would say something about the member (ADR 0010).

A member's records may also point at records outside the member's compartment (another
member's Condition, an Encounter never loaded). Those cannot be judged without their
own member's compartment and consent, and never go with this member: under ``regular``
every reference to them is removed like a reference to withheld data, but for a
reference to another Patient that exists and says nothing sensitive by itself
(a subscriber, a linked record) (``foreign_withheld``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from payerbridge.consent.labels import labelled
from payerbridge.consent.model import ConsentPolicy
from payerbridge.consent.segmentation import (
    DEFAULT_SEGMENTATION,
    SegmentationPolicy,
    reference_key,
    segment,
    sensitive_categories_of,
    without_references,
)
from payerbridge.disclosure.scope import PAYER_TO_PAYER, ReleaseScope, WholeRecord
from payerbridge.fhir.resources import iter_references
from payerbridge.fhir.shared import (
    SHARED_TYPES,
    SharedResources,
    reach_shared,
    reachable_shared,
    resource_key,
    shared_references,
)

__all__ = [
    "Release",
    "SHARED_TYPES",
    "SharedResources",
    "foreign_withheld",
    "references_by_kind",
    "reach_shared",
    "reachable_shared",
    "release",
    "shared_references",
]

Resource = dict[str, Any]


@dataclass(frozen=True)
class Release:
    records: list[Resource]  # the member's own records that may go, in the order given
    shared: list[Resource]  # the shared resources they reach that may go, by reference
    withheld_count: int  # for the audit trail only; the requester never learns it
    outside_scope: int = 0  # what the data scope kept back, for the audit trail

    @property
    def resources(self) -> list[Resource]:
        return [*self.records, *self.shared]


def release(
    records: Sequence[Resource],
    shared: SharedResources,
    policy: ConsentPolicy,
    segmentation: SegmentationPolicy = DEFAULT_SEGMENTATION,
    scope: ReleaseScope = PAYER_TO_PAYER,
) -> Release:
    """``records`` (the member's, all of them where withholding may spread between them,
    as for a compartment) with the shared resources they reach, as ``policy`` lets them
    go: everything under ``sensitive``; under ``regular`` the segmented rest, stripped
    of references to what is withheld. Then only what ``scope`` lets leave, shaped as
    it says (judged first with the rest: a record the rule keeps back may still make
    another sensitive). Under the whole record (the plan's own organization, ADR 0052)
    everything goes, labelled as a regular consent would have judged it."""
    if isinstance(scope, WholeRecord) and scope.labels:
        return _labelled(records, shared, segmentation)
    own = {key for record in records if (key := resource_key(record)) is not None}
    reached = reach_shared((ref for r in records for ref in shared_references(r)), shared, own)
    candidates = [*records, *reached]
    withheld = 0
    if policy is ConsentPolicy.REGULAR:
        result = segment(candidates, segmentation)
        candidates, withheld = result.kept, result.withheld_count
        known = own | {key for r in reached if (key := resource_key(r)) is not None}
        outside = {k for r in candidates for k in references_by_kind(r)[1]} - known
        foreign = foreign_withheld(outside, shared, segmentation)
        if foreign:
            candidates = [without_references(r, foreign) for r in candidates]
    in_scope = [r for r in candidates if scope.excludes(r) is None]
    outside_scope = len(candidates) - len(in_scope)
    kept_records = [r for r in in_scope if resource_key(r) in own]
    kept_shared: dict[str, Resource] = {}
    for resource in in_scope:
        key = resource_key(resource)
        if key is not None and key not in own:
            kept_shared[key] = resource
    reachable = reachable_shared(
        (ref for r in kept_records for ref in shared_references(r)),
        {key: tuple(shared_references(r)) for key, r in kept_shared.items()},
    )
    dropped = len(kept_shared) - len(reachable)
    return Release(
        [scope.shaped(r)[0] for r in kept_records],
        [scope.shaped(kept_shared[key])[0] for key in sorted(reachable)],
        withheld + dropped,
        outside_scope,
    )


def _labelled(
    records: Sequence[Resource], shared: SharedResources, segmentation: SegmentationPolicy
) -> Release:
    """The whole record, each resource labelled ``R`` when a regular consent would not
    let it go (sensitive, about what is, or reached only through what is), else ``N``."""
    whole = WholeRecord(labels=False)
    everything = release(records, shared, ConsentPolicy.SENSITIVE, segmentation, whole)
    regular = release(records, shared, ConsentPolicy.REGULAR, segmentation, whole)
    went = {resource_key(r) for r in regular.resources}

    def label(resource: Resource) -> Resource:
        restricted = resource_key(resource) not in went
        return labelled(resource, sensitive=restricted, segmentation=segmentation)

    return Release([label(r) for r in everything.records], [label(r) for r in everything.shared], 0)


def references_by_kind(
    resource: Resource, references: Iterable[str] | None = None
) -> tuple[list[str], list[str]]:
    """In one reading, the shared resources ``resource`` refers to by a local reference
    (``shared_references``), and the ``Type/id`` of every other record it refers to
    (relative or absolute; contained and bundle-local ones left out); ``references``:
    every reference it holds (``references_of``), when the caller has read them."""
    shared: list[str] = []
    others: list[str] = []
    for reference in iter_references(resource) if references is None else references:
        if reference.count("/") == 1:  # the common case: a relative Type/id
            resource_type, _, resource_id = reference.partition("/")
            if resource_type in SHARED_TYPES:
                shared.append(reference)
                continue
            if resource_type and resource_id and not reference.startswith(("#", "urn:")):
                others.append(reference)
                continue
        key = reference_key(reference)
        if key is not None and key.split("/", 1)[0] not in SHARED_TYPES:
            others.append(key)
    return shared, others


def foreign_withheld(
    outside: AbstractSet[str],
    store: SharedResources,
    segmentation: SegmentationPolicy = DEFAULT_SEGMENTATION,
) -> frozenset[str]:
    """Of the records outside a member's compartment that its records refer to, those a
    ``regular`` release removes the references to: all but another Patient that exists
    and says nothing sensitive by itself (what a Patient may say depends on nothing
    else in its compartment)."""
    if not outside:
        return frozenset()
    patients = sorted(key for key in outside if key.startswith("Patient/"))
    plain = {
        f"Patient/{patient['id']}"
        for patient in (store.read_many(patients) if patients else [])
        if patient.get("resourceType") == "Patient"
        and not sensitive_categories_of(patient, segmentation)
    }
    return frozenset(outside - plain)
