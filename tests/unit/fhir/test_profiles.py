"""The profile checker against the shipped packages' own examples, and against examples
broken on purpose (hypothesis picks the example and the element).

The examples are the packages' own (``tests/data/profile-examples``, written by
``payerbridge_tools.profile_packages --examples``); an example that claims no profile is
checked against the one its guide lists it under.
"""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payerbridge.fhir.invariants import SKIPPED, unsupported
from payerbridge.fhir.profile_check import slice_test
from payerbridge.fhir.profile_packages import shipped_packages
from payerbridge.fhir.profile_rules import ElementRule
from payerbridge.fhir.profiles import ProfileChecker, ProfileIssue

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "profile-examples"
PACKAGES = sorted(path.name.removesuffix(".json.gz") for path in EXAMPLES.glob("*.json.gz"))

# Examples of the shipped packages that do not pass, with why. None today: every example
# that claims a shipped profile meets it (those claiming only profiles we do not ship, such
# as HRex's or base FHIR's vitalsigns, are left out of the check).
NOT_VALID: dict[str, str] = {}

# Slices whose discriminators the snapshot does not let us read (their binding's ValueSet
# is not shipped, or the slice constrains nothing at the discriminator's path): no
# instance is ever recognised as one of them, so a required one always fails (fail closed).
UNRECOGNISED_SLICES = {
    "pdex-consent|2.1.0 Consent.policy:pdex": "hrex-consent-policy ValueSet not shipped",
    "pdex-priorauthorization|2.0.0 ExplanationOfBenefit.adjudication:denialreason": (
        "the slice constrains no category"
    ),
    "pdex-priorauthorization|2.1.0 ExplanationOfBenefit.adjudication:denialreason": (
        "the slice constrains no category"
    ),
    "us-core-medicationrequest|6.1.0 MedicationRequest.category:us-core": "base R4 ValueSet",
    "us-core-medicationrequest|7.0.0 MedicationRequest.category:us-core": "base R4 ValueSet",
    "us-core-servicerequest|6.1.0 ServiceRequest.category:us-core": "base R4 ValueSet",
    "us-core-servicerequest|7.0.0 ServiceRequest.category:us-core": "base R4 ValueSet",
}

# Whose required bindings cannot be checked because their ValueSets are not shipped:
# base FHIR R4 (hl7.fhir.r4.core is not a shipped package), HL7 terminology (THO), VSAC,
# X12, and the guides we do not ship (HRex, NDH). A ValueSet of a shipped guide that is
# missing would be a packaging mistake.
OUTSIDE_AUTHORITIES = (
    "http://hl7.org/fhir/ValueSet/",
    "http://terminology.hl7.org/ValueSet/",
    "http://cts.nlm.nih.gov/fhir/ValueSet/",
    "https://valueset.x12.org/",
    "http://hl7.org/fhir/us/davinci-hrex/",
    "http://hl7.org/fhir/us/ndh/",
)

MARKER = "PHI-MARKER-4711"  # a value no issue text may ever repeat


@pytest.fixture(scope="session")
def checker() -> ProfileChecker:
    return ProfileChecker.bundled()


@cache
def _examples(package: str) -> list[dict[str, Any]]:
    examples: list[dict[str, Any]] = json.loads(
        gzip.decompress((EXAMPLES / f"{package}.json.gz").read_bytes())
    )
    return examples


def _claiming_shipped(package: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each example with the shipped profiles it claims (or its guide lists it under)."""
    checker = ProfileChecker.bundled()
    for example in _examples(package):
        resource = example["resource"]
        claims = (resource.get("meta") or {}).get("profile") or [example["listedProfile"]]
        shipped = [claim for claim in claims if claim and checker.knows(claim)]
        if shipped:
            meta = {**(resource.get("meta") or {}), "profile": shipped}
            yield example["file"], {**resource, "meta": meta}


@pytest.mark.parametrize("package", PACKAGES)
def test_the_packages_own_examples_pass(checker: ProfileChecker, package: str) -> None:
    failing = {
        f"{package}/{file}": [issue.to_json() for issue in issues]
        for file, resource in _claiming_shipped(package)
        if (issues := checker.check(resource))
    }
    assert set(failing) == {key for key in NOT_VALID if key.startswith(package + "/")}, failing


def test_every_example_package_has_examples_checked() -> None:
    for package in PACKAGES:
        assert len(list(_claiming_shipped(package))) >= 20, package


def test_a_resource_that_claims_no_profile_fails(checker: ProfileChecker) -> None:
    (issue,) = checker.check({"resourceType": "Patient", "id": "p"})
    assert (issue.rule, issue.path) == ("no-profile", "Patient")


def test_a_profile_not_shipped_fails_closed(checker: ProfileChecker) -> None:
    claimed = "http://example.org/StructureDefinition/ours"
    (issue,) = checker.check({"resourceType": "Patient", "meta": {"profile": [claimed]}})
    assert (issue.rule, issue.profile) == ("unknown-profile", claimed)
    assert not checker.knows(claimed)
    assert checker.knows("http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|6.1.0")
    assert not checker.knows("http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|9")


def test_a_profile_of_another_resource_type_fails(checker: ProfileChecker) -> None:
    profile = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
    (issue,) = checker.check({"resourceType": "Observation", "meta": {"profile": [profile]}})
    assert issue.rule == "type"


def test_the_carin_basis_profiles_are_shipped(checker: ProfileChecker) -> None:
    base = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-"
    for kind in (
        "Inpatient-Institutional",
        "Outpatient-Institutional",
        "Oral",
        "Pharmacy",
        "Professional-NonClinician",
    ):
        assert checker.knows(f"{base}{kind}-Basis|2.2.0"), kind


def test_the_skipped_invariants_are_exactly_those_the_engine_cannot_evaluate(
    checker: ProfileChecker,
) -> None:
    """A new invariant fhirpathpy cannot evaluate fails here until it is listed in
    ``invariants.SKIPPED`` with the reason, or made to work."""
    native = {"ele-1", "ext-1", "dom-3"}
    cannot = set()
    for versions in checker._profiles.values():
        for profile in versions:
            for element in profile.elements:
                for constraint in element.get("constraint", []):
                    key = constraint["key"]
                    if key not in native and unsupported(
                        constraint["expression"], profile.terminology
                    ):
                        cannot.add(key)
    assert cannot == set(SKIPPED)
    assert set(checker.skipped_invariants()) == set(SKIPPED)


def test_the_bindings_left_unchecked_are_of_valuesets_outside_the_shipped_guides(
    checker: ProfileChecker,
) -> None:
    """Or held, but importing one from outside (US Core 6.1.0's race and ethnicity sets
    import VSAC's)."""
    unchecked = checker.unchecked_bindings()
    assert unchecked, "base R4's required bindings cannot be checked without its package"
    imports = {
        vs["url"]: {
            imported
            for include in vs.get("compose", {}).get("include", [])
            for imported in include.get("valueSet", [])
        }
        for package in shipped_packages()
        for vs in package.value_sets
    }
    inside = sorted(
        url
        for url in unchecked
        if not url.startswith(OUTSIDE_AUTHORITIES)
        and not any(i.startswith(OUTSIDE_AUTHORITIES) for i in imports.get(url, ()))
    )
    assert inside == []


def _walk_slices(rule: ElementRule) -> Iterator[tuple[ElementRule, ElementRule]]:
    for piece in rule.slices:
        yield rule, piece
        yield from _walk_slices(piece)
    for child in rule.children:
        yield from _walk_slices(child)


def test_the_slices_whose_discriminators_cannot_be_read_are_listed(
    checker: ProfileChecker,
) -> None:
    found = set()
    for versions in checker._profiles.values():
        for profile in versions:
            for owner, piece in _walk_slices(profile.root):
                if slice_test(owner, piece, profile.terminology.rule) is None:
                    found.add(f"{profile.canonical.rsplit('/', 1)[-1]} {piece.id}")
    assert found == set(UNRECOGNISED_SLICES)


# --- examples broken on purpose ----------------------------------------------------------


def _pinned(resource: dict[str, Any], checker: ProfileChecker) -> dict[str, Any] | None:
    """The example claiming only the newest shipped version of its first profile."""
    claim = resource["meta"]["profile"][0]
    versions = checker._versions(claim)
    if not versions or versions[-1].type != resource["resourceType"]:
        return None
    pinned = copy.deepcopy(resource)
    pinned["meta"]["profile"] = [versions[-1].canonical]
    return pinned if not checker.check(pinned) else None


@cache
def _valid_examples() -> list[dict[str, Any]]:
    checker = ProfileChecker.bundled()
    found = []
    for package in PACKAGES:
        for _, resource in _claiming_shipped(package):
            pinned = _pinned(resource, checker)
            if pinned is not None:
                found.append(pinned)
    return found


def _root(resource: dict[str, Any]) -> ElementRule:
    checker = ProfileChecker.bundled()
    return checker._versions(resource["meta"]["profile"][0])[-1].root


def _required_children(resource: dict[str, Any]) -> list[str]:
    """Top-level elements the profile requires that the example has (not sliced ones,
    not primitives carried only by their ``_name``)."""
    return [
        child.name
        for child in _root(resource).children
        if child.min >= 1
        and not child.is_choice
        and not child.slices
        and child.name in resource
        and child.name != "meta"  # without it, the resource claims no profile at all
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_dropping_a_required_element_fails_cardinality(
    checker: ProfileChecker, data: st.DataObject
) -> None:
    cases = [r for r in _valid_examples() if _required_children(r)]
    resource = copy.deepcopy(data.draw(st.sampled_from(cases)))
    name = data.draw(st.sampled_from(_required_children(resource)))
    del resource[name]
    resource.pop("_" + name, None)
    issues = checker.check(resource)
    assert any(
        i.rule == "cardinality" and i.path == f"{resource['resourceType']}.{name}" for i in issues
    ), issues


def _coded(rule: ElementRule, value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, dict) and ("coding" in value or "code" in value)
    )


def _bound_children(resource: dict[str, Any]) -> list[str]:
    """Top-level elements with a checkable required binding to listed codes."""
    checker = ProfileChecker.bundled()
    found = []
    for child in _root(resource).children:
        if child.binding is None or child.slices or child.name not in resource:
            continue
        rule = checker.code_rule(child.binding)
        value = resource[child.name]
        if rule is not None and not rule.systems and rule.codes and _coded(child, value):
            found.append(child.name)
    return found


def _recode(value: Any) -> Any:
    if isinstance(value, str):
        return MARKER
    if isinstance(value, list):
        return [_recode(item) for item in value]
    if "coding" in value:
        return {**value, "coding": [{**c, "code": MARKER} for c in value["coding"]]}
    return {**value, "code": MARKER}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_an_unknown_code_in_a_required_binding_fails_binding(
    checker: ProfileChecker, data: st.DataObject
) -> None:
    cases = [r for r in _valid_examples() if _bound_children(r)]
    resource = copy.deepcopy(data.draw(st.sampled_from(cases)))
    name = data.draw(st.sampled_from(_bound_children(resource)))
    resource[name] = _recode(resource[name])
    issues = checker.check(resource)
    assert any(
        i.rule == "binding" and i.path.startswith(f"{resource['resourceType']}.{name}")
        for i in issues
    ), issues
    assert not any(MARKER in i.text for i in issues)


def _fixed_children(resource: dict[str, Any]) -> list[str]:
    return [
        child.name
        for child in _root(resource).children
        if (child.fixed is not None or child.pattern is not None)
        and not child.slices
        and isinstance(resource.get(child.name), str)
    ]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_changing_a_fixed_or_pattern_value_fails(
    checker: ProfileChecker, data: st.DataObject
) -> None:
    cases = [r for r in _valid_examples() if _fixed_children(r)]
    resource = copy.deepcopy(data.draw(st.sampled_from(cases)))
    name = data.draw(st.sampled_from(_fixed_children(resource)))
    resource[name] = MARKER
    issues = checker.check(resource)
    assert {i.rule for i in issues} & {"fixed", "pattern"}, issues
    assert not any(MARKER in i.text for i in issues)


def _of_type(kind: str) -> list[dict[str, Any]]:
    return [r for r in _valid_examples() if r["resourceType"] == kind]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_breaking_an_invariant_fails_with_its_key(
    checker: ProfileChecker, data: st.DataObject
) -> None:
    breakages = {
        # obs-6: dataAbsentReason only where there is no value
        "obs-6": (
            "Observation",
            lambda r: r.update(valueString=MARKER, dataAbsentReason={"text": "unknown"}),
        ),
        # ele-1: every element has a value or children
        "ele-1": ("Patient", lambda r: r.update(maritalStatus={})),
        # dom-3: a contained resource is referred to
        "dom-3": (
            "Patient",
            lambda r: r.update(
                contained=[{"resourceType": "Organization", "id": "lonely", "name": MARKER}]
            ),
        ),
        # ext-1: an extension has a value or extensions, not both
        "ext-1": (
            "Patient",
            lambda r: r.setdefault("extension", []).append(
                {
                    "url": "http://example.org/x",
                    "valueString": MARKER,
                    "extension": [{"url": "y", "valueString": MARKER}],
                }
            ),
        ),
    }
    key = data.draw(st.sampled_from(sorted(breakages)))
    kind, breaking = breakages[key]
    resource = copy.deepcopy(data.draw(st.sampled_from(_of_type(kind))))
    breaking(resource)
    issues = checker.check(resource)
    assert f"invariant:{key}" in {i.rule for i in issues}, issues
    assert not any(MARKER in i.text for i in issues)


def test_a_us_core_patient_without_a_name_breaks_us_core_6(checker: ProfileChecker) -> None:
    patient = {
        "resourceType": "Patient",
        "meta": {
            "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|6.1.0"]
        },
        "identifier": [{"system": "http://example.org/mrn", "value": "1"}],
        "gender": "female",
        "name": [{"text": MARKER}],
    }
    issues = checker.check(patient)
    assert {(i.rule, i.path) for i in issues} == {("invariant:us-core-6", "Patient.name[0]")}
    assert all(isinstance(i, ProfileIssue) and MARKER not in i.text for i in issues)


def test_a_basis_eob_needs_no_amounts_where_the_financial_profile_does(
    checker: ProfileChecker,
) -> None:
    """CARIN BB 2.2.0's non-financial Basis EOBs (payer-to-payer under PDex 2.2) pass
    without their totals; the same EOB claiming the financial profile fails for want of
    them."""
    basis = [
        r for r in _valid_examples() if r["meta"]["profile"][0].split("|")[0].endswith("-Basis")
    ]
    assert basis
    for example in basis:
        resource = {key: value for key, value in example.items() if key != "total"}
        assert checker.check(resource) == []
        financial = copy.deepcopy(resource)
        financial["meta"]["profile"] = [resource["meta"]["profile"][0].replace("-Basis|", "|")]
        issues = checker.check(financial)
        assert any(i.path.startswith("ExplanationOfBenefit.total") for i in issues), issues


def test_an_invariant_on_a_choice_element_sees_the_type_its_key_names(
    checker: ProfileChecker,
) -> None:
    """An invariant on ``effective[x]`` such as ``$this as dateTime`` (vs-1): the engine
    is told the instance is a dateTime, or every effectiveDateTime would fail it (the
    golden fhir-server-quirks scenario quarantined every lab so)."""
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "meta": {
            "profile": [
                "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab|6.1.0"
            ]
        },
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2021-03-05",
        "valueQuantity": {
            "value": 6.1,
            "unit": "%",
            "system": "http://unitsofmeasure.org",
            "code": "%",
        },
    }
    assert checker.check(observation) == []
