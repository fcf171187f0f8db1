"""Walking one resource against a compiled profile (``profile_rules``): what it finds
wrong, as (path, rule, text), where the text never carries the instance's values.

Instances are found by their JSON names: a primitive's ``_name`` (its id and
extensions, such as a data-absent-reason) counts as an occurrence of it; a choice
element ``value[x]`` is any ``valueQuantity``, ``valueString``... key. Each occurrence
of a sliced element goes to the first slice whose discriminators it meets (or to none:
an error where the slicing is closed), and is then checked against that slice's rules,
children included. Elements the snapshot does not unfold (the inside of a datatype no
profile constrains) are not visited: their rules are base FHIR's, which is not shipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from payerbridge.fhir.profile_rules import PRIMITIVES, Discriminator, ElementRule, type_of_key
from payerbridge.fhir.value_sets import CodeRule

__all__ = ["Found", "ProfileRule", "Walk", "slice_test"]


class ProfileRule(StrEnum):
    """The kinds of rule a resource can break against a profile it claims: why the
    quarantine holds it (``ProfileIssue.rule``; an invariant is ``invariant:<key>``). Each
    has its runbook, ``docs/runbooks/<rule>.md``."""

    NO_PROFILE = "no-profile"  # it claims none
    UNKNOWN_PROFILE = "unknown-profile"  # it claims one we do not ship
    TYPE = "type"  # a profile of another resource type, or a choice type it does not allow
    CARDINALITY = "cardinality"
    FIXED = "fixed"
    PATTERN = "pattern"
    BINDING = "binding"  # no code from a required value set
    INVARIANT = "invariant"


Found = tuple[str, str, str]  # (path, rule, text)

_MAX_DEPTH = 4  # extensions checked against their own profiles, nested at most this deep


@dataclass(frozen=True)
class _Occurrence:
    path: str
    value: Any  # the instance; a primitive's ``_name`` object when it has no value
    type: str | None  # the type a choice key names
    is_bare: bool  # a primitive with no value, only its id or extensions


def _occurrences(parent: Mapping[str, Any], rule: ElementRule, path: str) -> list[_Occurrence]:
    if rule.is_choice:
        prefix = rule.name[:-3]
        found = []
        for key in parent:
            kind = type_of_key(key, prefix)
            if kind is not None:
                found += _named(parent, key, f"{path}.{key}", kind)
            elif (
                key.startswith("_")
                and key[1:] not in parent
                and (kind := type_of_key(key[1:], prefix)) is not None
            ):
                found += _named(parent, key[1:], f"{path}.{key[1:]}", kind)
        return found
    name = rule.name
    if parent.get(name) is None and parent.get("_" + name) is None:
        return []  # (most elements a profile names are absent: no path made for them)
    return _named(parent, name, f"{path}.{name}", None)


def _named(parent: Mapping[str, Any], name: str, path: str, kind: str | None) -> list[_Occurrence]:
    raw, extra = parent.get(name), parent.get("_" + name)
    if raw is None and extra is None:
        return []
    if not isinstance(raw, list) and not isinstance(extra, list):
        if raw is None:
            return [_Occurrence(path, extra, kind, True)]
        return [_Occurrence(path, raw, kind, False)]
    values = raw if isinstance(raw, list) else [raw] if raw is not None else []
    extras = extra if isinstance(extra, list) else []
    found = []
    for index in range(max(len(values), len(extras))):
        value = values[index] if index < len(values) else None
        if value is None:
            bare = extras[index] if index < len(extras) else None
            if bare is not None:
                found.append(_Occurrence(f"{path}[{index}]", bare, kind, True))
            continue
        found.append(_Occurrence(f"{path}[{index}]", value, kind, False))
    return found


def _contains(instance: Any, pattern: Any) -> bool:
    """Whether ``instance`` carries everything ``pattern`` says (FHIR pattern[x])."""
    if isinstance(pattern, Mapping):
        return isinstance(instance, Mapping) and all(
            _contains(instance.get(key), value) for key, value in pattern.items()
        )
    if isinstance(pattern, list):
        items = instance if isinstance(instance, list) else [instance]
        return all(any(_contains(item, wanted) for item in items) for wanted in pattern)
    return _same(instance, pattern)


def _same(instance: Any, wanted: Any) -> bool:
    if isinstance(instance, bool) or isinstance(wanted, bool):
        return instance is wanted
    return bool(instance == wanted)


def _at(value: Any, path: Sequence[str]) -> list[Any]:
    """The values at ``path`` under ``value`` (lists flattened), as FHIRPath would."""
    current = value if isinstance(value, list) else [value]
    for step in path:
        following: list[Any] = []
        for item in current:
            if isinstance(item, Mapping) and item.get(step) is not None:
                found = item[step]
                following += found if isinstance(found, list) else [found]
        current = following
    return current


def _descend(rule: ElementRule, path: Sequence[str]) -> ElementRule | None:
    node: ElementRule | None = rule
    for step in path:
        node = None if node is None else node.child(step) or node.child(step + "[x]")
    return node


def _expected(rule: ElementRule, path: Sequence[str]) -> tuple[str, list[Any]] | None:
    """What a slice's value or pattern discriminator at ``path`` wants: ("fixed" or
    "pattern", the values), from the first fixed or pattern value on the way down."""
    node: ElementRule | None = rule
    for depth in range(len(path) + 1):
        if node is None:
            break
        for kind, value in (("fixed", node.fixed), ("pattern", node.pattern)):
            if value is not None:
                wanted = _at(value, path[depth:])
                return (kind, wanted) if wanted else None
        if depth < len(path):
            node = node.child(path[depth]) or node.child(path[depth] + "[x]")
    if tuple(path) == ("url",) and rule.profiles:
        return "fixed", [rule.profiles[0].partition("|")[0]]
    return None


def slice_test(
    owner: ElementRule, piece: ElementRule, code_rule: Callable[[str], CodeRule | None]
) -> Callable[[Any], bool] | None:
    """Whether an occurrence of the sliced ``owner`` belongs to its slice ``piece``; None
    when the discriminators cannot be read from the snapshot (the slice is then never
    recognised)."""
    tests = []
    for discriminator in owner.discriminators:
        test = _discriminator_test(piece, discriminator, code_rule)
        if test is None:
            return None
        tests.append(test)
    return lambda occurrence: all(test(occurrence) for test in tests)


def _discriminator_test(
    rule: ElementRule, discriminator: Discriminator, code_rule: Callable[[str], CodeRule | None]
) -> Callable[[_Occurrence], bool] | None:
    path = discriminator.path
    if discriminator.kind in ("value", "pattern"):
        expected = _expected(rule, path)
        if expected is None:
            return _binding_test(rule, path, code_rule)
        kind, wanted = expected
        if kind == "fixed":
            return lambda o: any(_same(v, w) for v in _at(o.value, path) for w in wanted)
        return lambda o: any(_contains(v, w) for v in _at(o.value, path) for w in wanted)
    if discriminator.kind in ("type", "profile"):
        node = _descend(rule, path)
        if node is None:
            return None
        types = set(node.types)
        if not path:
            return lambda o: (o.type or _resource_type(o.value)) in types
        return lambda o: any(_resource_type(v) in types for v in _at(o.value, path))
    if discriminator.kind == "exists":
        node = _descend(rule, path)
        if node is None:
            return None
        present = node.min >= 1
        return lambda o: bool(_at(o.value, path)) == present
    return None


def _binding_test(
    rule: ElementRule, path: Sequence[str], code_rule: Callable[[str], CodeRule | None]
) -> Callable[[_Occurrence], bool] | None:
    """A value discriminator met by a required binding (FHIR: "as determined by the
    applicable fixed value, pattern, or required ValueSet binding")."""
    node = _descend(rule, path)
    if node is None or node.binding is None:
        return None
    admits = code_rule(node.binding)
    if admits is None:
        return None
    return lambda o: any(_admitted(admits, v) for v in _at(o.value, path))


def _resource_type(value: Any) -> str | None:
    return value.get("resourceType") if isinstance(value, Mapping) else None


class Walk:
    """One resource checked against one compiled profile."""

    def __init__(
        self,
        resource: Mapping[str, Any],
        *,
        code_rule: Callable[[str], CodeRule | None],
        extension: Callable[[str], ElementRule | None],
        slice_tests: Callable[[ElementRule, ElementRule], Callable[[Any], bool] | None],
    ) -> None:
        self._resource = resource
        self._code_rule = code_rule
        self._extension = extension
        self._slice_tests = slice_tests
        self.found: list[Found] = []

    def check(self, root: ElementRule) -> list[Found]:
        occurrence = _Occurrence(root.name, self._resource, None, False)
        self._check_value(root, occurrence, 0)
        return self.found

    def _children(
        self, rule: ElementRule, instance: Mapping[str, Any], path: str, depth: int
    ) -> None:
        for child in rule.children:
            occurrences = _occurrences(instance, child, path)
            if occurrences or child.min or child.slices:  # else nothing to find
                self._check_element(child, occurrences, path, depth)

    def _check_element(
        self, rule: ElementRule, occurrences: list[_Occurrence], path: str, depth: int
    ) -> None:
        self._cardinality(rule, len(occurrences), f"{path}.{rule.name}")
        if not rule.slices:
            for occurrence in occurrences:
                self._check_value(rule, occurrence, depth)
            return
        counts = dict.fromkeys(range(len(rule.slices)), 0)
        for occurrence in occurrences:
            index = self._slice_of(rule, occurrence)
            if index is None:
                if rule.closed:
                    self.found.append(
                        (
                            occurrence.path,
                            "cardinality",
                            f"in none of the slices of {rule.id}, and the slicing is closed",
                        )
                    )
                self._check_value(rule, occurrence, depth)
            else:
                counts[index] += 1
                self._check_value(rule.slices[index], occurrence, depth)
        for index, piece in enumerate(rule.slices):
            self._cardinality(piece, counts[index], f"{path}.{rule.name}:{piece.slice_name}")

    def _slice_of(self, rule: ElementRule, occurrence: _Occurrence) -> int | None:
        for index, piece in enumerate(rule.slices):
            test = self._slice_tests(rule, piece)
            if test is not None and test(occurrence):
                return index
        return None

    def _cardinality(self, rule: ElementRule, count: int, path: str) -> None:
        if count < rule.min:
            text = f"{count} found where {rule.id} needs at least {rule.min}"
            self.found.append((path, ProfileRule.CARDINALITY.value, text))
        elif rule.max is not None and count > rule.max:
            allowed = "none" if rule.max == 0 else f"at most {rule.max}"
            self.found.append(
                (
                    path,
                    ProfileRule.CARDINALITY.value,
                    f"{count} found where {rule.id} allows {allowed}",
                )
            )

    def _check_value(self, rule: ElementRule, occurrence: _Occurrence, depth: int) -> None:
        value, path = occurrence.value, occurrence.path
        if occurrence.type is not None and rule.types and occurrence.type not in rule.types:
            self.found.append(
                (path, ProfileRule.TYPE.value, f"{rule.id} does not allow a {occurrence.type}")
            )
            return
        if not occurrence.is_bare:
            self._values(rule, occurrence)
        for invariant in rule.invariants:
            try:
                kind = occurrence.type if len(rule.types) > 1 else None
                holds = invariant.check(value, self._resource, kind)
            except Exception:  # noqa: BLE001 - the engine's own errors: fail closed
                holds = False
            if not holds:
                self.found.append(
                    (path, f"{ProfileRule.INVARIANT.value}:{invariant.key}", invariant.human)
                )
        if depth < _MAX_DEPTH:
            for profile in rule.profiles:
                extension = self._extension(profile)
                if extension is not None and isinstance(value, Mapping):
                    self._check_value(extension, occurrence, depth + 1)
        if isinstance(value, Mapping) and not self._is_primitive(rule, occurrence):
            self._children(rule, value, path, depth)

    @staticmethod
    def _is_primitive(rule: ElementRule, occurrence: _Occurrence) -> bool:
        kind = occurrence.type or (rule.types[0] if len(rule.types) == 1 else None)
        return occurrence.is_bare or kind in PRIMITIVES

    def _values(self, rule: ElementRule, occurrence: _Occurrence) -> None:
        value, path = occurrence.value, occurrence.path
        if rule.fixed is not None and not _same(value, rule.fixed):
            self.found.append(
                (
                    path,
                    ProfileRule.FIXED.value,
                    f"differs from the value {rule.id} fixes: {_brief(rule.fixed)}",
                )
            )
        if rule.pattern is not None and not _contains(value, rule.pattern):
            self.found.append(
                (
                    path,
                    ProfileRule.PATTERN.value,
                    f"lacks what {rule.id} requires: {_brief(rule.pattern)}",
                )
            )
        if rule.binding is not None:
            code_rule = self._code_rule(rule.binding)
            if code_rule is not None and not _admitted(code_rule, value):
                text = f"no code from the required value set {rule.binding}"
                self.found.append((path, ProfileRule.BINDING.value, text))


def _admitted(rule: CodeRule, value: Any) -> bool:
    if isinstance(value, str):
        return rule.admits(None, value)
    if not isinstance(value, Mapping):
        return False
    if "coding" in value or "text" in value:
        return any(
            isinstance(c, Mapping) and rule.admits(c.get("system"), c.get("code"))
            for c in value.get("coding", [])
        )
    if "code" not in value and "value" in value:
        return True  # a Quantity without a coded unit
    return rule.admits(value.get("system"), value.get("code"))


def _brief(value: Any) -> str:
    """A profile's own value (never an instance's), short."""
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."
