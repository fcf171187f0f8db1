"""Recognising sensitive data in a resource (pure): every Coding anywhere in it, its
security labels and its free text, looked up in the categories in force.

One walk over the parsed JSON visits every element: a Coding is any object with a
``code`` (a string, or a number some systems write), wherever it sits (a resource's
main code, an extension or modifierExtension at any depth, an Observation component's
value, a claim's ``supportingInfo``, an Encounter's ``serviceType``, ``meta.tag``, a
contained resource, a Quantity); an extension's ``valueCode`` is a code without a
system. ``meta.security`` Codings are also read as labels. No path list decides where
codes may be, so a code written somewhere unexpected is judged all the same.

A code is compared within the system its Coding names, recognised however it is
spelled (``categories.system_identity``); a code with no system, or a system we do not
know, is compared against every system the sets hold (fail closed). Lookups are cached
by (system, code) as written: a population repeats the same few codes. An NDC is
compared in its 11-digit form, a 10-digit one without hyphens in each layout it may
have. Free text is judged by the categories' terms (``consent.terms``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from payerbridge.consent.categories import (
    NDC,
    SensitiveCategory,
    ndc_forms,
    normalize_code,
    system_identity,
)
from payerbridge.consent.terms import TermIndex, resource_text

__all__ = ["CategoryIndex", "categories_in", "categories_and_json"]

_MOST_CACHED_CODES = 65536
_NO_NAMES: frozenset[str] = frozenset()
# Leaves of parsed JSON that hold nothing to walk.
_LEAVES = frozenset({str, int, float, bool, type(None)})
# Primitive elements whose string value is a code with no system (extensions, Parameters).
_CODE_VALUES = frozenset({"valueCode"})
_BRANCHES = (Mapping, list, tuple)
# Every code a walk would look up, read from the resource's JSON: a string or a number
# after a "code" or "valueCode" key.
_CODES_IN_JSON = re.compile(r'"(?:code|valueCode)":(?:"([^"\\]*)"|(-?[0-9]+))')


class CategoryIndex:
    """Category names by label, by exact code and by code prefix: lookups, not scans."""

    def __init__(self, categories: Iterable[SensitiveCategory]) -> None:
        categories = tuple(categories)
        self.terms = TermIndex(categories)
        self.labels: dict[tuple[str, str], set[str]] = {}
        self.codes: dict[tuple[str, str], set[str]] = {}
        self.prefixes: dict[tuple[str, str], set[str]] = {}
        for category in categories:
            for label in category.security_labels:
                self.labels.setdefault(label, set()).add(category.name)
            for code in category.codes:
                self.codes.setdefault(code, set()).add(category.name)
            for prefix in category.code_prefixes:
                self.prefixes.setdefault(prefix, set()).add(category.name)
        self.has_prefixes = {system for system, _ in self.prefixes}
        # Every system a code may be judged in when its own system says nothing.
        self.label_systems = tuple(sorted({system for system, _ in self.labels}))
        self.has_codes = {system for system, _ in self.codes}
        self.systems = tuple(sorted(self.has_codes | self.has_prefixes))
        self._by_code: dict[tuple[object, str], frozenset[str]] = {}
        self._by_label: dict[tuple[object, str], frozenset[str]] = {}
        # Whether a code could be sensitive in some system: the screen before a walk.
        self._may_be_sensitive: dict[str, bool] = {}

    def may_be_sensitive(self, code: str) -> bool:
        """Whether ``code`` falls in some category in any system (what a code with no
        system is judged by, so a superset of any system's answer)."""
        found = self._may_be_sensitive.get(code)
        if found is None:
            found = bool(self.names_for_code(None, code))
            if len(self._may_be_sensitive) >= _MOST_CACHED_CODES:
                self._may_be_sensitive.clear()
            self._may_be_sensitive[code] = found
        return found

    def names_for_code(self, system: object, code: str) -> frozenset[str]:
        """The categories of ``code`` in ``system`` as written (None or a non-string:
        no system)."""
        found = self._by_code.get((system, code))
        if found is None:
            found = self._look_up(system, code)
            if len(self._by_code) >= _MOST_CACHED_CODES:
                self._by_code.clear()
            self._by_code[(system, code)] = found
        return found

    def names_for_label(self, system: object, code: str) -> frozenset[str]:
        """The categories of a security label; one with no system or a system we do not
        know counts in every label system (fail closed)."""
        found = self._by_label.get((system, code))
        if found is None:
            code = code.strip()
            known = False
            if isinstance(system, str) and system.strip():
                canonical, known = system_identity(system)
            systems = (canonical,) if known else self.label_systems
            names: set[str] = set()
            for candidate in systems:
                names.update(self.labels.get((candidate, code), ()))
            found = frozenset(names) if names else _NO_NAMES
            if len(self._by_label) >= _MOST_CACHED_CODES:
                self._by_label.clear()
            self._by_label[(system, code)] = found
        return found

    def _look_up(self, system: object, code: str) -> frozenset[str]:
        known = False
        if isinstance(system, str) and system.strip():
            canonical, known = system_identity(system)
        candidates = (canonical,) if known else self.systems
        if known and canonical not in self.has_prefixes and canonical not in self.has_codes:
            return _NO_NAMES
        names: set[str] = set()
        for candidate in candidates:
            forms = ndc_forms(code) if candidate == NDC else (normalize_code(candidate, code),)
            for normalized in forms:
                names.update(self.codes.get((candidate, normalized), ()))
                if candidate in self.has_prefixes:
                    for length in range(1, len(normalized) + 1):
                        names.update(self.prefixes.get((candidate, normalized[:length]), ()))
        return frozenset(names) if names else _NO_NAMES


def categories_in(resource: Mapping[str, Any], index: CategoryIndex) -> set[str]:
    """The names of the categories whose labels, codes or terms appear anywhere in
    ``resource`` (contained resources included).

    Most resources fall in none, so they are screened first in C: the resource as JSON,
    every code a walk would look up read from it by one regular expression, each asked
    whether it could be sensitive in any system. Only a resource with such a code, a
    security label, an escaped character (which could spell a code another way) or
    something JSON cannot hold is walked (a code in full-width or other compatibility
    characters is screened in NFKC like any other). The same JSON text is then searched
    for the categories' terms (``consent.terms``): free text is judged too."""
    return categories_and_json(resource, index)[0]


def categories_and_json(
    resource: Mapping[str, Any], index: CategoryIndex, raw: bytes | None = None
) -> tuple[set[str], bytes | None]:
    """``categories_in``, and the resource's JSON it read them from (None when JSON
    cannot hold it), for a caller that reads more from it; ``raw``: that JSON, when the
    caller has it already."""
    if raw is None:
        try:
            raw = orjson.dumps(resource)
        except (TypeError, orjson.JSONEncodeError):
            return _walk(resource, index) | index.terms.names_in(resource_text(resource)), None
    names = index.terms.names_in_json(raw)
    text = raw.decode()
    if "\\" in text or '"security"' in text:
        return names | _walk(resource, index), raw
    screen = index.may_be_sensitive
    for quoted, number in _CODES_IN_JSON.findall(text):
        if screen(quoted or number):
            return names | _walk(resource, index), raw
    return names, raw


def _walk(resource: Mapping[str, Any], index: CategoryIndex) -> set[str]:
    """``categories_in`` by walking every element."""
    # Exact type checks first, and the cache read inline.
    names: set[str] = set()
    stack: list[Any] = [resource]
    pop, push = stack.pop, stack.append
    cached, look_up = index._by_code.get, index.names_for_code
    while stack:
        current = pop()
        kind = type(current)
        if kind is not dict and not isinstance(current, Mapping):
            for item in current:
                kind = type(item)
                if (
                    kind is dict
                    or kind is list
                    or (kind not in _LEAVES and isinstance(item, _BRANCHES))
                ):
                    push(item)
            continue
        for key, value in current.items():
            kind = type(value)
            if kind is str:
                if key == "code":
                    system = current.get("system")
                    if type(system) is not str:
                        system = None  # none, or not a system: judged against every set
                    found = cached((system, value))
                    if found is None:
                        found = look_up(system, value)
                    if found:
                        names |= found
                elif key in _CODE_VALUES:
                    found = look_up(None, value)
                    if found:
                        names |= found
            elif kind is dict:
                push(value)
            elif kind is list:
                if key == "security":
                    _label_names(value, index, names)
                push(value)
            elif kind is int:
                if key == "code":  # a code some systems write as a number
                    system = current.get("system")
                    found = look_up(system if type(system) is str else None, str(value))
                    if found:
                        names |= found
            elif kind not in _LEAVES and isinstance(value, _BRANCHES):
                push(value)  # another Mapping or sequence type
    return names


def _label_names(security: list[Any], index: CategoryIndex, names: set[str]) -> None:
    for coding in security:
        if isinstance(coding, Mapping):
            code = coding.get("code")
            system = coding.get("system")
            if isinstance(code, str):
                found = index.names_for_label(system if isinstance(system, str) else None, code)
                if found:
                    names |= found
