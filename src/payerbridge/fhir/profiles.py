"""Profiles checked at the boundary (ADR 0030): every resource the product produces is
checked against each profile it claims (``meta.profile``) before it may leave.

``ProfileChecker.bundled()`` checks against the packages that ship with the product
(US Core 3.1.1, 6.1.0 and 7.0.0; CARIN BB 2.0.0 and 2.2.0; PDex 2.0.0, 2.1.0 and 2.2.0:
``profile_packages``), from their StructureDefinitions' snapshots: cardinality (slices
included, told apart by their discriminators; closed slicing), choice types, fixed and
pattern values, required bindings (``value_sets``) and error invariants, evaluated with
fhirpathpy (``invariants``, which lists those it skips and why).

Fail closed: a resource that claims no profile, or one we do not ship, fails. A claim
without a version (``...|6.1.0``) is met by any shipped version of the profile; when none
is met, the issues are those of the newest. Each profile is compiled on its first use and
kept; the checker is pure and safe to share between threads once warm (``warm()``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from payerbridge.fhir.invariants import SKIPPED
from payerbridge.fhir.profile_check import ProfileRule, Walk, slice_test
from payerbridge.fhir.profile_packages import Package, shipped_packages
from payerbridge.fhir.profile_rules import ElementRule, compile_profile
from payerbridge.fhir.value_sets import CodeRule, Terminology

__all__ = ["ProfileChecker", "ProfileIssue"]


@dataclass(frozen=True)
class ProfileIssue:
    """One thing wrong with a resource against a profile it claims."""

    profile: str  # the canonical checked, url|version
    path: str  # where, e.g. "ExplanationOfBenefit.item[0].productOrService"
    rule: str  # a ``ProfileRule``: cardinality, type, ..., or invariant:<key>
    text: str  # what a person can act on; never the element's value

    def to_json(self) -> dict[str, str]:
        return {"profile": self.profile, "path": self.path, "rule": self.rule, "text": self.text}


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))


class _Profile:
    """One version of a profile, compiled on first use."""

    def __init__(self, document: Mapping[str, Any], package: Package, terms: Terminology) -> None:
        self.url: str = document["url"]
        self.version: str = document.get("version") or package.version
        self.type: str = document["type"]
        self.kind: str = document["kind"]
        self.package = package
        self.terminology = terms
        self._elements = document["element"]
        self._root: ElementRule | None = None

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}"

    @property
    def root(self) -> ElementRule:
        if self._root is None:
            self._root = compile_profile(self._elements, self.terminology)
        return self._root

    @property
    def elements(self) -> Sequence[Mapping[str, Any]]:
        return self._elements  # type: ignore[no-any-return]


class ProfileChecker:
    """Checks resources against the profiles of ``packages``."""

    def __init__(self, packages: Iterable[Package]) -> None:
        packages = tuple(packages)
        everything = Terminology(
            [vs for p in packages for vs in p.value_sets],
            [cs for p in packages for cs in p.code_systems],
        )
        self._everything = everything
        self._profiles: dict[str, list[_Profile]] = {}
        for package in packages:
            terms = Terminology(package.value_sets, package.code_systems, fallback=everything)
            for document in package.profiles:
                profile = _Profile(document, package, terms)
                self._profiles.setdefault(profile.url, []).append(profile)
        for versions in self._profiles.values():
            versions.sort(key=lambda p: _version_key(p.version))

    @classmethod
    def bundled(cls) -> ProfileChecker:
        """The packages shipped with the product (one checker per process)."""
        return _bundled()

    def knows(self, profile_url: str) -> bool:
        return bool(self._versions(profile_url))

    def profiles(self) -> list[str]:
        """Every profile shipped, as url|version."""
        return sorted(p.canonical for versions in self._profiles.values() for p in versions)

    def check(self, resource: Mapping[str, Any]) -> list[ProfileIssue]:
        """What is wrong with ``resource`` against every profile it claims (empty: it
        may leave)."""
        kind = str(resource.get("resourceType", "Resource"))
        claims = (resource.get("meta") or {}).get("profile") or []
        if not claims:
            text = "the resource claims no profile (meta.profile): nothing can vouch for it"
            return [ProfileIssue("", kind, ProfileRule.NO_PROFILE.value, text)]
        issues: list[ProfileIssue] = []
        for claim in claims:
            issues += self._check_claim(resource, kind, str(claim))
        return issues

    def warm(self) -> None:
        """Compile every profile now rather than on first use."""
        for versions in self._profiles.values():
            for profile in versions:
                _ = profile.root

    def _versions(self, claim: str) -> list[_Profile]:
        url, _, version = claim.partition("|")
        versions = self._profiles.get(url, [])
        if version:
            return [
                p for p in versions if p.version == version or p.version.startswith(version + ".")
            ]
        return versions

    def _check_claim(
        self, resource: Mapping[str, Any], kind: str, claim: str
    ) -> list[ProfileIssue]:
        versions = [p for p in self._versions(claim) if p.kind == "resource"]
        if not versions:
            text = "the resource claims a profile that is not among the packages shipped"
            return [ProfileIssue(claim, kind, ProfileRule.UNKNOWN_PROFILE.value, text)]
        if all(p.type != kind for p in versions):
            text = f"the profile is one of {versions[-1].type}, not of {kind}"
            return [ProfileIssue(versions[-1].canonical, kind, ProfileRule.TYPE.value, text)]
        found: list[ProfileIssue] = []
        for profile in reversed(versions):  # newest first: its issues are the ones reported
            walked = self._walk(resource, profile)
            if not walked:
                return []
            if not found:
                found = [ProfileIssue(profile.canonical, *item) for item in walked]
        return found

    def _walk(self, resource: Mapping[str, Any], profile: _Profile) -> list[tuple[str, str, str]]:
        terms = profile.terminology
        walk = Walk(
            resource,
            code_rule=lambda value_set: terms.rule(value_set),
            extension=lambda url: self._extension(url, profile.package),
            slice_tests=lambda owner, piece: self._slice_test(owner, piece, terms),
        )
        return walk.check(profile.root)

    def _extension(self, url: str, package: Package) -> ElementRule | None:
        versions = [p for p in self._versions(url) if p.type == "Extension"]
        own = [p for p in versions if p.package is package]
        chosen = (own or versions)[-1:]
        return chosen[0].root if chosen else None

    @staticmethod
    def _slice_test(
        owner: ElementRule, piece: ElementRule, terms: Terminology
    ) -> Callable[[Any], bool] | None:
        tests = owner.slice_tests
        if piece.id not in tests:
            tests[piece.id] = slice_test(owner, piece, terms.rule)
        return tests[piece.id]

    def unchecked_bindings(self) -> dict[str, set[str]]:
        """The required bindings the packages cannot check (their ValueSet is not held
        or imports one that is not), by ValueSet canonical, each with the profiles
        binding to it."""
        unchecked: dict[str, set[str]] = {}
        for versions in self._profiles.values():
            for profile in versions:
                for element in profile.elements:
                    value_set = (element.get("binding") or {}).get("valueSet")
                    if value_set and profile.terminology.rule(value_set) is None:
                        unchecked.setdefault(value_set.partition("|")[0], set()).add(
                            profile.canonical
                        )
        return unchecked

    def skipped_invariants(self) -> dict[str, str]:
        """The invariants of the shipped profiles that are not evaluated, with why."""
        return {
            constraint["key"]: SKIPPED[constraint["key"]]
            for versions in self._profiles.values()
            for profile in versions
            for element in profile.elements
            for constraint in element.get("constraint", [])
            if constraint["key"] in SKIPPED
        }

    def code_rule(self, value_set: str) -> CodeRule | None:
        """What ``value_set`` admits, from any shipped package (None: not held)."""
        return self._everything.rule(value_set)


@cache
def _bundled() -> ProfileChecker:
    return ProfileChecker(shipped_packages())
