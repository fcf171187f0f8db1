"""What a required binding accepts, expanded from the ValueSets and CodeSystems the
product ships (``profile_packages``), without a terminology server.

A ValueSet's ``compose`` is expanded into a ``CodeRule``: the (system, code) pairs it
lists, and the whole systems it takes without our being able to list them:

- ``include`` of a CodeSystem with its concepts listed: those codes;
- ``include`` of a whole CodeSystem the packages hold completely: every code in it;
- ``include`` of a whole system the packages do not hold (SNOMED CT, LOINC, ICD-10, CPT,
  RxNorm, NUCC, X12...): the coding's system is checked, its code is not;
- ``include`` with a ``filter``: on a CodeSystem we hold, ``concept is-a`` /
  ``descendent-of`` are followed down its hierarchy; any other filter (LOINC's
  ``CLASSTYPE``, BCP-47's ``ext-lang``...) takes the whole system, code unchecked;
- ``include`` of other ValueSets (``valueSet``): their union, each expanded the same way;
  a ValueSet importing one the packages do not hold cannot be expanded (``None``);
- ``exclude`` of listed concepts removes them; an ``exclude`` of a whole system, a filter
  or another ValueSet is not applied (the rule stays the more permissive).

A ValueSet the packages do not hold (the base FHIR R4 ones such as
``administrative-gender``, VSAC's, THO's) has no rule: the checker cannot check that
binding and says so (``ProfileChecker.unchecked_bindings``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CodeRule", "Terminology"]


@dataclass(frozen=True)
class CodeRule:
    """The codes a ValueSet admits: ``codes`` listed, plus any code of ``systems``."""

    url: str
    codes: frozenset[tuple[str, str]]
    systems: frozenset[str]

    def admits(self, system: str | None, code: str | None) -> bool:
        """Whether (system, code) is in the set. A bare ``code`` (no system: a ``code``
        element) is looked up among the codes of every system."""
        if code is None:
            return False
        if system is None:
            return bool(self.systems) or code in self._bare_codes
        return system in self.systems or (system, code) in self.codes

    @property
    def _bare_codes(self) -> frozenset[str]:
        bare = self.__dict__.get("_bare")
        if bare is None:
            bare = frozenset(code for _, code in self.codes)
            object.__setattr__(self, "_bare", bare)
        return bare


_DOWN_FILTERS = {"is-a", "descendent-of"}


def _bare(url: str) -> str:
    return url.partition("|")[0]


class Terminology:
    """The ValueSets and CodeSystems of a package, then of ``fallback`` (all the shipped
    packages) for what it does not hold itself; each ValueSet expanded once, on first use.
    A canonical several packages hold is taken from the one read last."""

    def __init__(
        self,
        value_sets: Iterable[Mapping[str, Any]],
        code_systems: Iterable[Mapping[str, Any]],
        *,
        fallback: Terminology | None = None,
    ) -> None:
        self._value_sets = {_bare(vs["url"]): vs for vs in value_sets}
        self._code_systems = {
            _bare(cs["url"]): cs for cs in code_systems if cs.get("content") == "complete"
        }
        self._fallback = fallback
        self._rules: dict[str, CodeRule | None] = {}
        self._expanding = threading.RLock()  # one expansion at a time; reads need none
        self._in_progress: set[str] = set()

    def holds(self, value_set: str) -> bool:
        url = _bare(value_set)
        return url in self._value_sets or (self._fallback is not None and self._fallback.holds(url))

    def _code_system(self, system: str) -> Mapping[str, Any] | None:
        held = self._code_systems.get(system)
        if held is None and self._fallback is not None:
            return self._fallback._code_system(system)
        return held

    def rule(self, value_set: str) -> CodeRule | None:
        """What ``value_set`` admits, or None when the packages cannot tell."""
        url = _bare(value_set)
        if url in self._rules:
            return self._rules[url]
        with self._expanding:
            if url not in self._in_progress:
                self._in_progress.add(url)  # a ValueSet importing itself adds nothing
                try:
                    self._rules[url] = self._expand(url)
                finally:
                    self._in_progress.discard(url)
            return self._rules.get(url)

    def _expand(self, url: str) -> CodeRule | None:
        document = self._value_sets.get(url)
        if document is None:
            return None if self._fallback is None else self._fallback.rule(url)
        compose = document.get("compose", {})
        codes: set[tuple[str, str]] = set()
        systems: set[str] = set()
        for include in compose.get("include", []):
            for imported in include.get("valueSet", []):
                rule = self.rule(imported)
                if rule is None:
                    return None
                codes |= rule.codes
                systems |= rule.systems
            system = include.get("system")
            if system is not None:
                self._include(system, include, codes, systems)
        for exclude in compose.get("exclude", []):
            system = exclude.get("system")
            for concept in exclude.get("concept", []):
                codes.discard((system, concept["code"]))
        return CodeRule(url, frozenset(codes), frozenset(systems))

    def _include(
        self,
        system: str,
        include: Mapping[str, Any],
        codes: set[tuple[str, str]],
        systems: set[str],
    ) -> None:
        if include.get("concept"):
            codes.update((system, concept["code"]) for concept in include["concept"])
            return
        held = self._code_system(system)
        filters = include.get("filter", [])
        if held is None or any(
            f.get("property") != "concept" or f.get("op") not in _DOWN_FILTERS for f in filters
        ):
            systems.add(system)
            return
        concepts = held.get("concept", [])
        for condition in filters:
            below = _below(concepts, condition["value"])
            if below is None:
                return  # a code the system does not have: nothing is admitted
            concepts = (
                below
                if condition["op"] == "descendent-of"
                else [{"code": condition["value"], "concept": below}]
            )
        codes.update((system, code) for code in _codes(concepts))


def _codes(concepts: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    for concept in concepts:
        yield concept["code"]
        yield from _codes(concept.get("concept", []))


def _below(concepts: Iterable[Mapping[str, Any]], code: str) -> list[Any] | None:
    """The concepts under ``code`` in a CodeSystem's hierarchy, or None if it has no
    ``code``."""
    for concept in concepts:
        if concept["code"] == code:
            return list(concept.get("concept", []))
        found = _below(concept.get("concept", []), code)
        if found is not None:
            return found
    return None
