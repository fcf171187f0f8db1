"""The profiles' invariants (``constraint`` of severity error), compiled once with
fhirpathpy, the maintained FHIRPath engine, and evaluated per element instance.

Three kinds:

- **native**: the base invariants every element or resource carries, whose FHIRPath is
  fixed by the specification and checked here in Python, thousands of times cheaper than
  through the engine (``ele-1``: an element has a value or children; ``ext-1``: an
  extension has a value or extensions, not both; ``dom-3``: a contained resource is
  referred to, which fhirpathpy cannot evaluate: its ``as()`` refuses the collection
  ``descendants()`` gives); the other ``dom-*`` invariants about contained resources are
  vacuously true without ``contained`` and go to the engine only when it is there;
- **skipped**: those the engine cannot evaluate here, each listed in ``SKIPPED`` with
  the reason (a test fails when the shipped profiles bring a new one);
- **evaluated**: all the others. ``memberOf()`` is answered from the shipped ValueSets
  (``value_sets``), and ``hasValue()`` (missing from fhirpathpy) here. An invariant
  that raises while evaluated counts as failed (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhirpathpy import compile as compile_path
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser import parse

from payerbridge.fhir.invariant_memo import memo_key, projection_of
from payerbridge.fhir.value_sets import Terminology

__all__ = ["SKIPPED", "Invariant", "compile_invariant", "unsupported"]

_R4 = models["r4"]

# The invariants of the shipped profiles that are not evaluated, by key, with the reason.
SKIPPED: Mapping[str, str] = {
    # resolve(): the referenced resource is not at hand when one resource is checked.
    "ctm-1": "resolve(): needs the referenced resource",
    "provenance-1": "resolve(): needs the referenced resource",
    "EOB-inst-careTeam-organization": "resolve(): needs the referenced resource",
    "EOB-inst-careTeam-practitioner": "resolve(): needs the referenced resource",
    "EOB-pharm-careTeam-organization": "resolve(): needs the referenced resource",
    "EOB-pharm-careTeam-practitioner": "resolve(): needs the referenced resource",
    "EOB-prof-careTeam-practitioner": "resolve(): needs the referenced resource",
    # htmlChecks(): the narrative's XHTML rules; fhirpathpy has no such function.
    "txt-1": "htmlChecks(): XHTML narrative rules, not implemented by fhirpathpy",
    "txt-2": "htmlChecks(): XHTML narrative rules, not implemented by fhirpathpy",
    # memberOf() a VSAC ValueSet the packages do not hold (NUCC provider taxonomy).
    "EOB-careteam-qualification": "memberOf() a VSAC ValueSet the packages do not hold",
}

# The base invariants checked natively, by key, with the expression they stand for.
_ELE_1 = "hasValue() or (children().count() > id.count())"
_EXT_1 = "extension.exists() != value.exists()"
_DOM_3 = "contained.where((('#'+id in (%resource.descendants().reference"
_CONTAINED = ("dom-2", "dom-4", "dom-5")

# Distinct inputs remembered per invariant before the memo starts again.
_MEMO_SIZE = 20_000


class _Memo:
    """Whether answers are remembered (a test compares them with answers evaluated)."""

    enabled = True


MEMO = _Memo()

# Functions the engine implements only through our invocation table.
_OURS = {"memberOf", "hasValue"}


def _function_names(node: Mapping[str, Any]) -> Iterator[str]:
    if node.get("type") == "Functn":
        yield node["children"][0]["text"]
    for child in node.get("children", []):
        yield from _function_names(child)


def unsupported(expression: str, terminology: Terminology) -> str | None:
    """Why fhirpathpy cannot evaluate ``expression`` here, or None if it can."""
    from fhirpathpy.engine.invocations import invocation_registry

    for name in _function_names(parse(expression)):  # type: ignore[no-untyped-call]
        if name not in invocation_registry and name not in _OURS:
            return f"{name}() is not implemented by fhirpathpy"
    for value_set in _member_of_targets(expression):
        if not terminology.holds(value_set):
            return f"memberOf() a ValueSet the packages do not hold: {value_set}"
    return None


def _member_of_targets(expression: str) -> Iterator[str]:
    rest = expression
    while "memberOf('" in rest:
        rest = rest.split("memberOf('", 1)[1]
        yield rest.split("'", 1)[0]


@dataclass(frozen=True)
class Invariant:
    """One invariant, ready to evaluate on an instance of its element."""

    key: str
    human: str
    holds: Callable[[Any, Mapping[str, Any]], bool]  # (the instance, the resource)
    # The same, told the instance's type: a choice element's (``effectiveDateTime`` is a
    # dateTime), which the element's path alone does not give fhirpathpy.
    holds_as: Callable[[Any, Mapping[str, Any], str], bool] | None = None

    def check(self, value: Any, root: Mapping[str, Any], kind: str | None = None) -> bool:
        if kind is not None and self.holds_as is not None:
            return self.holds_as(value, root, kind)
        return self.holds(value, root)


def compile_invariant(
    constraint: Mapping[str, Any], type_path: str, terminology: Terminology
) -> Invariant | None:
    """``constraint`` compiled for instances of ``type_path`` (their type, or the
    element's path for a backbone element); None when it is skipped (``SKIPPED``)."""
    key, expression = constraint["key"], constraint["expression"]
    human = constraint.get("human", key)
    if key in SKIPPED:
        return None
    if key == "ele-1" and expression == _ELE_1:
        return Invariant(key, human, _has_value_or_children)
    if key == "ext-1" and expression == _EXT_1:
        return Invariant(key, human, _value_or_extensions)
    if key == "dom-3" and expression.startswith(_DOM_3):
        return Invariant(key, human, _contained_referred_to)
    evaluate = _compiled(expression, type_path, terminology)
    if key in _CONTAINED:
        return Invariant(
            key, human, lambda value, root: "contained" not in value or evaluate(value, root)
        )
    typed = _typed(expression, terminology)
    return Invariant(key, human, evaluate, lambda value, root, kind: typed(value, root, kind))


@cache  # one parse per expression, type and package (``ProfileChecker`` lives long)
def _compiled(
    expression: str, type_path: str, terminology: Terminology
) -> Callable[[Any, Mapping[str, Any]], bool]:
    def member_of(inputs: list[Any], value_set: str) -> list[bool]:
        rule = terminology.rule(value_set)
        if rule is None or not inputs:
            return []
        return [any(_admitted(rule, item) for item in inputs)]

    table = {
        "memberOf": {"fn": member_of, "arity": {1: ["String"]}},
        "hasValue": {"fn": _has_value},
    }
    function = compile_path(expression, _R4, options={"userInvocationTable": table})
    projection = projection_of(expression)
    answers: dict[bytes, bool] = {}  # by what the answer depends on (``invariant_memo``)

    def evaluated(value: Any, root: Mapping[str, Any]) -> bool:
        node = ResourceNode.create_node(value, type_path)  # type: ignore[no-untyped-call]
        result = function(node, {"resource": root, "rootResource": root})
        return bool(result) and all(item is True for item in result)

    def holds(value: Any, root: Mapping[str, Any]) -> bool:
        if projection is None or not MEMO.enabled:
            return evaluated(value, root)
        key = memo_key(projection, value, root)
        answer = answers.get(key)
        if answer is None:
            if len(answers) >= _MEMO_SIZE:
                answers.clear()
            answer = answers[key] = evaluated(value, root)
        return answer

    return holds


@cache
def _typed(
    expression: str, terminology: Terminology
) -> Callable[[Any, Mapping[str, Any], str], bool]:
    """``expression`` evaluated on an instance of a type given at each call."""
    compiled: dict[str, Callable[[Any, Mapping[str, Any]], bool]] = {}

    def holds(value: Any, root: Mapping[str, Any], kind: str) -> bool:
        if kind not in compiled:
            compiled[kind] = _compiled(expression, kind, terminology)
        return compiled[kind](value, root)

    return holds


def _admitted(rule: Any, item: Any) -> bool:
    if isinstance(item, str):
        return bool(rule.admits(None, item))
    if not isinstance(item, Mapping):
        return False
    if "coding" in item:
        return any(_admitted(rule, coding) for coding in item["coding"])
    return bool(rule.admits(item.get("system"), item.get("code")))


def _has_value(inputs: list[Any]) -> list[bool]:
    """FHIRPath ``hasValue()``: a single primitive with a value."""
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], Mapping)]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _contained_referred_to(value: Any, _root: Mapping[str, Any]) -> bool:
    """dom-3: each contained resource is referred to ("#id") from the resource, or
    refers to the resource itself ("#")."""
    contained = value.get("contained") if isinstance(value, Mapping) else None
    if not contained:
        return True
    outside = {**value, "contained": []}
    mentioned = set(_strings(outside)) | {
        text for inner in contained for text in _strings(inner) if text.startswith("#")
    }
    return all(
        f"#{inner.get('id')}" in mentioned or "#" in set(_strings(inner))
        for inner in contained
        if isinstance(inner, Mapping)
    )


def _has_value_or_children(value: Any, _root: Mapping[str, Any]) -> bool:
    if isinstance(value, Mapping):
        return any(key != "id" for key in value)
    return value is not None


def _value_or_extensions(value: Any, _root: Mapping[str, Any]) -> bool:
    if not isinstance(value, Mapping):
        return True
    has_value = any(key.startswith("value") for key in value)
    return bool(value.get("extension")) != has_value
