"""Security labels on what the plan's own organization reads (pure, ADR 0052).

The plan reads its members' records whole, sensitive data included, since no consent
stands between a plan and what it holds. What a ``regular`` consent would have withheld
is still said on each resource, so that the plan's downstream systems can honour it:
``meta.security`` gets the HL7 confidentiality code ``R`` (restricted) and a label of each
sensitive category the resource falls in by itself; a resource a regular consent would
let go gets ``N`` (normal). A confidentiality code the resource already carries stays
unless it says less than ``R`` of a sensitive one: a resource has one confidentiality
code, and ours never lowers the source's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from payerbridge.consent.segmentation import (
    SegmentationPolicy,
    judge,
    sensitive_categories_of,
    withheld_among,
)
from payerbridge.fhir.shared import (
    SHARED_TYPES,
    reachable_shared,
    resource_key,
    shared_references,
)

__all__ = ["CONFIDENTIALITY", "labelled", "let_go"]

Resource = dict[str, Any]

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
# v3 Confidentiality, lowest to highest: U unrestricted, L low, M moderate, N normal,
# R restricted, V very restricted.
_RANK = {"U": 0, "L": 1, "M": 2, "N": 3, "R": 4, "V": 5}


def labelled(
    resource: Resource,
    *,
    sensitive: bool,
    segmentation: SegmentationPolicy,
) -> Resource:
    """A copy of ``resource`` whose ``meta.security`` says how a regular consent treats it:
    ``sensitive`` (it, or what it is about, would be withheld) or not; the resource itself
    is never changed."""
    meta = dict(resource.get("meta") or {})
    labels = [label for label in meta.get("security") or [] if isinstance(label, dict)]
    kept = [label for label in labels if label.get("system") != CONFIDENTIALITY]
    given = [str(label.get("code")) for label in labels if label.get("system") == CONFIDENTIALITY]
    wanted = "R" if sensitive else "N"
    highest = max(given, key=lambda code: _RANK.get(code, -1), default=None)
    if highest is not None and _RANK.get(highest, -1) >= _RANK[wanted]:
        wanted = highest
    present = {(label.get("system"), label.get("code")) for label in kept}
    categories = _category_labels(resource, segmentation) if sensitive else ()
    added = [
        {"system": system, "code": code}
        for system, code in categories
        if (system, code) not in present
    ]
    meta["security"] = [*kept, *added, _confidentiality(wanted)]
    return {**resource, "meta": meta}


def _category_labels(
    resource: Resource, segmentation: SegmentationPolicy
) -> Iterable[tuple[str, str]]:
    """One label per sensitive category ``resource`` falls in by itself (the first of the
    category's labels in code order), the confidentiality ones left to ``labelled``."""
    names = sensitive_categories_of(resource, segmentation)
    for category in segmentation.code_sets.categories:
        if category.name not in names:
            continue
        own = sorted(
            (system, code) for system, code in category.security_labels if system != CONFIDENTIALITY
        )
        if own:
            yield own[0]


def _confidentiality(code: str) -> dict[str, str]:
    return {"system": CONFIDENTIALITY, "code": code}


def let_go(resources: Sequence[Resource], segmentation: SegmentationPolicy) -> set[str]:
    """The ``Type/id`` of each of ``resources``, judged together, that a ``regular`` consent
    lets go: not withheld (sensitive, about what is), and for a shared resource, reached
    from a record that is not (what only withheld records reach says something of the
    member too: ADR 0010, as ``disclosure.release`` decides it)."""
    withheld = withheld_among([judge(r, segmentation) for r in resources], segmentation)
    kept = [r for n, r in enumerate(resources) if n not in withheld.indexes]
    links = {
        key: tuple(shared_references(r))
        for r in kept
        if r.get("resourceType") in SHARED_TYPES and (key := resource_key(r)) is not None
    }
    records = [r for r in kept if r.get("resourceType") not in SHARED_TYPES]
    reached = reachable_shared((ref for r in records for ref in shared_references(r)), links)
    return {key for r in records if (key := resource_key(r)) is not None} | reached
