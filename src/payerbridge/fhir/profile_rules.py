"""A StructureDefinition's snapshot compiled into a tree of element rules, once per
profile, for ``profile_check`` to walk an instance against.

Each rule holds what its element's snapshot entry says that an instance can get wrong:
cardinality, allowed types (of a choice element), fixed and pattern values, a required
binding (its ValueSet's canonical), the error invariants (``invariants``), its children,
and its slices with the discriminators that tell them apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from payerbridge.fhir.invariants import Invariant, compile_invariant
from payerbridge.fhir.value_sets import Terminology

__all__ = ["PRIMITIVES", "Discriminator", "ElementRule", "compile_profile", "type_of_key"]

PRIMITIVES = frozenset(
    {
        "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id",
        "instant", "integer", "integer64", "markdown", "oid", "positiveInt", "string", "time",
        "unsignedInt", "uri", "url", "uuid", "xhtml",
    }
)  # fmt: skip

_NOT_A_TYPE_PATH = {"BackboneElement", "Element"}


@dataclass(frozen=True)
class Discriminator:
    kind: str  # value | pattern | type | exists | profile
    path: tuple[str, ...]  # () for $this


@dataclass
class ElementRule:
    id: str
    name: str  # the JSON name; "value[x]" for a choice
    min: int
    max: int | None  # None: unbounded
    types: tuple[str, ...]
    type_path: str  # what fhirpathpy is told an instance is
    fixed: Any = None
    pattern: Any = None
    binding: str | None = None  # a required binding's ValueSet canonical
    invariants: tuple[Invariant, ...] = ()
    profiles: tuple[str, ...] = ()  # the profiles an instance's type must meet (extensions)
    slice_name: str | None = None
    children: list[ElementRule] = field(default_factory=list)
    discriminators: tuple[Discriminator, ...] = ()
    closed: bool = False
    slices: list[ElementRule] = field(default_factory=list)
    # Each slice's test (``profile_check.slice_test``), built on first use, by slice id.
    slice_tests: dict[str, Callable[[Any], bool] | None] = field(default_factory=dict)

    @cached_property  # (asked for every element of every resource checked)
    def is_choice(self) -> bool:
        return self.name.endswith("[x]")

    def child(self, name: str) -> ElementRule | None:
        for child in self.children:
            if child.name == name:
                return child
        return None


def type_of_key(key: str, prefix: str) -> str | None:
    """The type a choice element's JSON key names (``valueQuantity`` → ``Quantity``,
    ``valueDateTime`` → ``dateTime``), or None if ``key`` is not one of ``prefix``'s."""
    if not key.startswith(prefix) or len(key) == len(prefix) or not key[len(prefix)].isupper():
        return None
    suffix = key[len(prefix) :]
    lowered = suffix[0].lower() + suffix[1:]
    return lowered if lowered in PRIMITIVES else suffix


def _steps(element_id: str) -> list[tuple[str, str | None]]:
    steps = []
    for part in element_id.split("."):
        name, _, slice_name = part.partition(":")
        steps.append((name, slice_name or None))
    return steps


def _maximum(value: str | None) -> int | None:
    return None if value is None or value == "*" else int(value)


def _value_of(element: Mapping[str, Any], prefix: str) -> Any:
    for key, value in element.items():
        if key.startswith(prefix):
            return value
    return None


def _rule(element: Mapping[str, Any], terminology: Terminology) -> ElementRule:
    types = tuple(kind["code"] for kind in element.get("type", []) if "code" in kind)
    path = element["path"]
    type_path = types[0] if len(types) == 1 and types[0] not in _NOT_A_TYPE_PATH else path
    if type_path.endswith("[x]"):
        type_path = type_path[:-3]
    if "." not in path:
        type_path = path  # the resource (or Extension) itself
    invariants = tuple(
        invariant
        for constraint in element.get("constraint", [])
        if (invariant := compile_invariant(constraint, type_path, terminology)) is not None
    )
    slicing = element.get("slicing", {})
    return ElementRule(
        id=element["id"],
        name=path.rsplit(".", 1)[-1],
        min=int(element.get("min", 0)),
        max=_maximum(element.get("max")),
        types=types,
        type_path=type_path,
        fixed=_value_of(element, "fixed"),
        pattern=_value_of(element, "pattern"),
        binding=(element.get("binding") or {}).get("valueSet"),
        invariants=invariants,
        profiles=tuple(
            profile
            for kind in element.get("type", [])
            if kind.get("code") == "Extension"
            for profile in kind.get("profile", [])
        ),
        slice_name=element.get("sliceName"),
        discriminators=tuple(
            Discriminator(d["type"], () if d["path"] == "$this" else tuple(d["path"].split(".")))
            for d in slicing.get("discriminator", [])
        ),
        closed=slicing.get("rules") == "closed",
    )


def compile_profile(elements: Iterable[Mapping[str, Any]], terminology: Terminology) -> ElementRule:
    """The root rule of a snapshot's ``elements`` (in snapshot order)."""
    by_id: dict[str, ElementRule] = {}
    root: ElementRule | None = None
    for element in elements:
        rule = _rule(element, terminology)
        by_id[rule.id] = rule
        steps = _steps(rule.id)
        if len(steps) == 1 and steps[0][1] is None:
            root = rule
            continue
        name, slice_name = steps[-1]
        if slice_name is not None:
            owner = by_id.get(rule.id.rsplit(":", 1)[0])
            if owner is not None:
                owner.slices.append(rule)
                continue
        parent = by_id.get(rule.id[: -len(rule.id.split(".")[-1]) - 1])
        if parent is not None:
            parent.children.append(rule)
    if root is None:
        raise ValueError("a snapshot without its root element")
    return root
