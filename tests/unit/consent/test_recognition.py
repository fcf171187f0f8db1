"""Sensitive data recognised in every encoding and place: a system however it is spelled,
a code with no system or an unknown one, a Coding anywhere in a resource; and, generated,
that ``segment`` under the shipped sets lets none of it go nor keeps a link to it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payerbridge.consent import segment
from payerbridge.consent.categories import (
    HCPCS,
    ICD10CM,
    LOINC,
    NUCC,
    RXNORM,
    SNOMED,
    CodeSetError,
    canonical_system,
    code_sets_from,
    system_identity,
)
from payerbridge.consent.segmentation import sensitive_categories_of
from payerbridge.fhir.resources import iter_references
from tests.sensitive_codes import SENSITIVE_CODES, spellings

Resource = dict[str, Any]


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("urn:oid:2.16.840.1.113883.6.90", ICD10CM),
        ("2.16.840.1.113883.6.90", ICD10CM),
        ("URN:OID:2.16.840.1.113883.6.90 ", ICD10CM),
        ("http://hl7.org/fhir/sid/icd-10-cm/", ICD10CM),
        ("https://hl7.org/fhir/sid/icd-10-cm", ICD10CM),
        (" HTTP://HL7.ORG/fhir/sid/ICD-10-CM ", ICD10CM),
        ("urn:oid:2.16.840.1.113883.6.3", ICD10CM),  # WHO ICD-10, read as ICD-10-CM
        ("urn:oid:2.16.840.1.113883.6.96", SNOMED),
        ("http://snomed.info/sct/731000124108", SNOMED),  # an edition in the URI
        ("urn:oid:2.16.840.1.113883.6.1", LOINC),
        ("https://loinc.org/", LOINC),
        ("urn:oid:2.16.840.1.113883.6.88", RXNORM),
        ("https://www.nlm.nih.gov/research/umls/rxnorm/", RXNORM),
        ("http://nlm.nih.gov/research/umls/rxnorm", RXNORM),
        ("http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", HCPCS),
        ("urn:oid:2.16.840.1.113883.6.285", HCPCS),
        ("urn:oid:2.16.840.1.113883.6.101", NUCC),
    ],
)
def test_a_system_is_recognised_however_it_is_spelled(written: str, meant: str) -> None:
    assert system_identity(written) == (meant, True)
    assert canonical_system(written) == meant


@pytest.mark.parametrize(
    "written",
    ["http://example.org/codes", "urn:oid:1.2.3.4", "http://hl7.org/fhir/sid/icd10cm", "ICD10"],
)
def test_a_system_we_do_not_know_is_not_known(written: str) -> None:
    assert system_identity(written)[1] is False


def condition(coding: dict[str, Any]) -> Resource:
    return {"resourceType": "Condition", "id": "c", "code": {"coding": [coding]}}


@pytest.mark.parametrize(
    ("coding", "expected"),
    [
        ({"system": "urn:oid:2.16.840.1.113883.6.90", "code": "B20"}, {"hiv"}),
        ({"code": "F11.20"}, {"substance-use"}),  # no system: every set
        ({"system": "", "code": "Z21"}, {"hiv"}),
        ({"system": "http://hl7.org/fhir/sid/icd-10-cm/", "code": "f11.20"}, {"substance-use"}),
        ({"system": "https://hl7.org/fhir/sid/icd-10-cm", "code": " B20 "}, {"hiv"}),
        ({"system": "http://example.org/local", "code": "B20"}, {"hiv"}),  # unknown system
        ({"system": RXNORM, "code": 476556}, {"hiv"}),  # a code written as a number
        ({"system": HCPCS, "code": "g2067"}, {"substance-use"}),  # HCPCS is case-insensitive
        ({"system": SNOMED, "code": "B20"}, set()),  # a known system: its own codes only
        ({"system": LOINC, "code": "2345-7"}, set()),
    ],
)
def test_a_code_is_judged_in_every_spelling(coding: dict[str, Any], expected: set[str]) -> None:
    assert sensitive_categories_of(condition(coding)) == expected


HIV = {"system": ICD10CM, "code": "B20"}


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Patient", "id": "p", "extension": [{"url": "x", "valueCoding": HIV}]},
        {
            "resourceType": "Patient",
            "id": "p",
            "extension": [{"url": "x", "extension": [{"url": "y", "valueCode": "B20"}]}],
        },
        {
            "resourceType": "Coverage",
            "id": "c",
            "modifierExtension": [{"url": "x", "valueCodeableConcept": {"coding": [HIV]}}],
        },  # fmt: skip
        {
            "resourceType": "Observation",
            "id": "o",
            "component": [{"code": {"text": "x"}, "valueCodeableConcept": {"coding": [HIV]}}],
        },  # fmt: skip
        {
            "resourceType": "ExplanationOfBenefit",
            "id": "e",
            "supportingInfo": [{"category": {"text": "x"}, "code": {"coding": [HIV]}}],
        },  # fmt: skip
        {"resourceType": "Encounter", "id": "e", "serviceType": {"coding": [HIV]}},
        {
            "resourceType": "Organization",
            "id": "o",
            "type": [{"coding": [{"system": NUCC, "code": "261QM2800X"}]}],
        },  # fmt: skip
        {
            "resourceType": "Coverage",
            "id": "c",
            "contained": [{"resourceType": "Basic", "id": "b", "code": {"coding": [HIV]}}],
        },  # fmt: skip
        {"resourceType": "Patient", "id": "p", "meta": {"tag": [HIV]}},
        {"resourceType": "Observation", "id": "o", "valueQuantity": {"value": 1, "code": "B20"}},
        {
            "resourceType": "Patient",
            "id": "p",
            "meta": {"security": [{"system": "urn:oid:2.16.840.1.113883.5.4", "code": "HIV"}]},
        },
    ],
)
def test_a_coding_anywhere_counts(resource: Resource) -> None:
    expected = {"substance-use"} if resource["resourceType"] == "Organization" else {"hiv"}
    assert sensitive_categories_of(resource) == expected


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ({"code": "HIV"}, {"hiv"}),  # no system: every label system
        ({"system": "http://example.org/labels", "code": "ETH"}, {"substance-use"}),
        ({"system": "urn:oid:2.16.840.1.113883.5.25", "code": " R "}, {"restricted"}),
        ({"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HIV"}, set()),
    ],
)
def test_a_security_label_is_judged_in_every_spelling(
    label: dict[str, Any], expected: set[str]
) -> None:
    resource = {"resourceType": "Coverage", "id": "c", "meta": {"security": [label]}}
    assert sensitive_categories_of(resource) == expected


def test_a_code_set_source_must_be_declared() -> None:
    document = {
        "version": "v1",
        "sources": {"a": "a list"},
        "categories": [
            {
                "name": "x",
                "description": "d",
                "legal_basis": "l",
                "codes": [{"system": LOINC, "code": "1-8", "source": "b"}],
            }
        ],
    }
    with pytest.raises(CodeSetError, match=r"categories\.0\.codes\.0\.source: 'b'"):
        code_sets_from(document)
    document["sources"] = {"b": "the list"}
    assert code_sets_from(document).categories[0].codes == {(LOINC, "1-8")}


def test_every_shipped_addition_names_a_declared_source() -> None:
    import json
    from importlib.resources import files

    text = files("payerbridge.consent").joinpath("data/sensitive-code-sets.json").read_text()
    document = json.loads(text)
    used = {
        entry["source"]
        for category in document["categories"]
        for kind in ("codes", "code_prefixes", "terms")
        for entry in category.get(kind, [])
        if "source" in entry
    }
    assert used == set(document["sources"])
    terms = [entry for category in document["categories"] for entry in category.get("terms", [])]
    assert terms and all("source" in entry for entry in terms)


# -- generated: sensitive facts in every encoding and place, then segmented


@st.composite
def spelled(draw: st.DrawFn) -> dict[str, Any]:
    """A sensitive Coding, its system and code written one of the ways real systems do."""
    system, code = draw(st.sampled_from(SENSITIVE_CODES))
    if system == ICD10CM and len(code) > 3 and "." not in code:
        code = f"{code[:3]}.{code[3:]}"
    code = draw(st.sampled_from([code, code.lower(), f" {code} "]))
    written = draw(st.sampled_from(spellings(system)))
    coding: dict[str, Any] = {"code": code}
    if written is not None:
        coding["system"] = written
    return coding


def place(kind: str, coding: dict[str, Any]) -> dict[str, Any]:
    """Elements of a resource that carry ``coding`` at the place ``kind`` names."""
    concept = {"coding": [{"system": "http://loinc.org", "code": "8867-4"}, coding]}
    return {
        "code": {"code": concept},
        "category": {"category": [concept]},
        "extension": {"extension": [{"url": "http://example.org/x", "valueCoding": coding}]},
        "nested-extension": {
            "extension": [
                {
                    "url": "http://example.org/x",
                    "extension": [{"url": "y", "valueCodeableConcept": concept}],
                }  # fmt: skip
            ]
        },
        "modifierExtension": {
            "modifierExtension": [{"url": "http://example.org/x", "valueCoding": coding}]
        },
        "component": {"component": [{"code": {"text": "x"}, "valueCodeableConcept": concept}]},
        "supportingInfo": {"supportingInfo": [{"sequence": 1, "code": concept}]},
        "serviceType": {"serviceType": concept},
        "meta.tag": {"meta": {"tag": [coding]}},
        "contained": {"contained": [{"resourceType": "Medication", "id": "m", "code": concept}]},
    }[kind]


PLACES = st.sampled_from(
    [
        "code",
        "category",
        "extension",
        "nested-extension",
        "modifierExtension",
        "component",
        "supportingInfo",
        "serviceType",
        "meta.tag",
        "contained",
    ]
)
TYPES = st.sampled_from(
    ["Condition", "Observation", "ExplanationOfBenefit", "Encounter", "Procedure", "Coverage"]
)


@st.composite
def members(draw: st.DrawFn) -> tuple[list[Resource], set[str]]:
    """A member's records, some with a sensitive fact somewhere, each kept record
    referring to others (the sensitive ones included)."""
    records: list[Resource] = [{"resourceType": "Patient", "id": "p"}]
    sensitive: set[str] = set()
    for n in range(draw(st.integers(1, 6))):
        resource: Resource = {
            "resourceType": draw(TYPES),
            "id": f"r{n}",
            "subject": {"reference": "Patient/p"},
        }
        if draw(st.booleans()):
            resource.update(place(draw(PLACES), draw(spelled())))
            sensitive.add(f"{resource['resourceType']}/r{n}")
        records.append(resource)
    keys = [f"{r['resourceType']}/{r['id']}" for r in records[1:]]
    for resource in records[1:]:
        resource["focus"] = [{"reference": key} for key in draw(st.lists(st.sampled_from(keys)))]
    return records, sensitive


@given(members())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_segment_lets_no_sensitive_fact_go_and_keeps_no_link_to_one(
    member: tuple[list[Resource], set[str]],
) -> None:
    records, sensitive = member
    before = copy.deepcopy(records)
    kept = segment(records).kept
    assert records == before  # never mutated
    kept_keys = {f"{r['resourceType']}/{r['id']}" for r in kept}
    assert not kept_keys & sensitive
    for resource in kept:
        assert not sensitive_categories_of(resource)
        assert not set(iter_references(resource)) & sensitive


@pytest.mark.parametrize(
    "coding",
    [
        {"system": ICD10CM, "code": ' B20"'},  # escaped in JSON: the screen walks instead
        {"system": RXNORM, "code": 476556},
        {"code": "B20", "extension": [{"url": "x", "valueInteger": 2**70}]},  # not JSON-able
    ],
)
def test_the_json_screen_never_hides_a_code_the_walk_would_find(coding: dict[str, Any]) -> None:
    from types import MappingProxyType

    from payerbridge.consent.recognition import _walk, categories_in
    from payerbridge.consent.segmentation import DEFAULT_SEGMENTATION

    index = DEFAULT_SEGMENTATION._index
    resource = condition(coding)
    assert categories_in(resource, index) == _walk(resource, index)
    proxied = MappingProxyType({**resource, "code": MappingProxyType(resource["code"])})
    assert categories_in(proxied, index) == _walk(resource, index)
