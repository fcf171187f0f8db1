"""What lies outside every member's compartment (Practitioner, Organization, Medication,
Location...) and how a member's records reach it: the same rule for what may leave
with a member (``disclosure``) and for how what the plan's own server receives is
labelled (``consent.labels``, ``delivery``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Set
from typing import Any, Protocol

from payerbridge.fhir.resources import COMPARTMENT_FIELD, iter_references

__all__ = [
    "SHARED_TYPES",
    "SharedResources",
    "reach_shared",
    "reachable_shared",
    "resource_key",
    "shared_references",
]

Resource = dict[str, Any]

# Types outside any compartment that a member's record points at and that PDex lists.
SHARED_TYPES = frozenset(t for t, f in COMPARTMENT_FIELD.items() if f is None) - {"Patient"}


class SharedResources(Protocol):
    def read_many(self, refs: list[str]) -> list[Resource]: ...


def shared_references(resource: Resource, references: Iterable[str] | None = None) -> Iterator[str]:
    """The ``Type/id`` of each shared resource ``resource`` refers to by a local reference
    (``references``: every reference it holds, when the caller has read them)."""
    for reference in iter_references(resource) if references is None else references:
        if reference.count("/") == 1 and reference.split("/", 1)[0] in SHARED_TYPES:
            yield reference


def reach_shared(start: Iterable[str], shared: SharedResources, own: Set[str]) -> list[Resource]:
    """Every shared resource reachable from the references ``start``, read level by
    level (those in ``own``, the member's records, are not read again)."""
    found: dict[str, Resource] = {}
    wanted = set(start) - own
    while wanted:
        level = shared.read_many(sorted(wanted))
        found.update((key, r) for r in level if (key := resource_key(r)) is not None)
        wanted = {ref for r in level for ref in shared_references(r)} - own - found.keys()
    return [found[key] for key in sorted(found)]


def reachable_shared(start: Iterable[str], links: Mapping[str, Iterable[str]]) -> set[str]:
    """The shared resources in ``links`` (each with what it refers to) reachable from
    the references ``start``: what may go with the records that refer to them."""
    seen: set[str] = set()
    frontier = list(start)
    while frontier:
        ref = frontier.pop()
        if ref in seen or ref not in links:
            continue
        seen.add(ref)
        frontier.extend(links[ref])
    return seen


def resource_key(resource: Resource) -> str | None:
    """``Type/id`` of ``resource``, None when it names neither."""
    resource_type, resource_id = resource.get("resourceType"), resource.get("id")
    if isinstance(resource_type, str) and isinstance(resource_id, str):
        return f"{resource_type}/{resource_id}"
    return None
