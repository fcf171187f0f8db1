"""Segmentation's reads of a resource (element paths, codes, references) give exactly what
naive recursive walks give, on tricky inputs too: every Coding anywhere is judged, its
system recognised however it is spelled, a code without a known system against every
set."""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.consent.categories import (
    ICD10CM,
    NDC,
    SHIPPED_CODE_SETS,
    SNOMED,
    canonical_system,
    ndc_forms,
    normalize_code,
    system_identity,
)
from payerbridge.consent.segmentation import (
    CLINICAL_TYPES,
    DEFAULT_SEGMENTATION,
    PROGRAM_TYPES,
    SegmentationPolicy,
    judge,
    reference_key,
    references_at,
    sensitive_categories_of,
)
from payerbridge.json_paths import ElementPath, element_path, values_at

# -- the walks as they were, to compare against


def recursive_values_at(node: Any, path: str | tuple[str, ...]) -> Iterator[Any]:
    steps = tuple(path.split(".")) if isinstance(path, str) else path
    if isinstance(node, list):
        for item in node:
            yield from recursive_values_at(item, steps)
    elif not steps:
        yield node
    elif isinstance(node, Mapping) and node.get(steps[0]) is not None:
        yield from recursive_values_at(node[steps[0]], steps[1:])


def scanned_names_for_code(policy: SegmentationPolicy, system: Any, code: str) -> set[str]:
    """Every category's codes and prefixes scanned, no index and no cache: within the
    system named when we know it, else within every system the sets hold."""
    categories = policy.code_sets.categories
    if isinstance(system, str) and system.strip() and system_identity(system)[1]:
        systems = {canonical_system(system)}
    else:
        systems = {s for c in categories for s, _ in c.codes | c.code_prefixes}
    names = set()
    for s in systems:
        for normalized in ndc_forms(code) if s == NDC else (normalize_code(s, code),):
            names |= {
                category.name
                for category in categories
                if (s, normalized) in category.codes
                or any(ps == s and normalized.startswith(p) for ps, p in category.code_prefixes)
            }
    return names


def walked_reference_strings(node: Any) -> Iterator[str]:
    """Every ``reference`` string anywhere."""
    if isinstance(node, list):
        for item in node:
            yield from walked_reference_strings(item)
    elif isinstance(node, Mapping):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from walked_reference_strings(value)


def walked_strings(node: Any) -> Iterator[str]:
    """Every key and string value, but the values of ``code``, ``valueCode`` and
    ``system`` (judged as codes) and of ``id``."""
    if isinstance(node, list):
        for item in node:
            yield from walked_strings(item)
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield key
            if key in ("code", "valueCode", "system", "id") and isinstance(value, str):
                continue
            yield from walked_strings(value)
    elif isinstance(node, str):
        yield node


def cleaned(text: str) -> str:
    """A string as a term is looked for in it: entities decoded, invisible marks gone."""
    text = unicodedata.normalize("NFKC", html.unescape(unicodedata.normalize("NFKC", text)))
    return re.sub("[\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff]", "", text)


@functools.cache
def term_pattern(term_text: str) -> re.Pattern[str]:
    """A term's words on their own, any run of spaces, hyphens or underscores between."""
    words = r"[\s\-_]+".join(re.escape(word) for word in term_text.split())
    return re.compile(rf"(?<![^\W_])(?:{words})(?![^\W_])")


def term_found(term: Any, text: str) -> bool:
    """One term looked for in one ``cleaned`` string, on its own (no trie, no screen).
    Each string is cleaned once and each term's pattern compiled once: the oracle did
    both for every pair, which held the generated tests for seconds."""
    pattern = term_pattern(term.text)
    if not term.case_sensitive:
        return bool(pattern.search(text.casefold()))
    for match in pattern.finditer(text):
        before = " ".join(text[: match.start()].casefold().split())
        if not any(before.endswith(words) for words in term.unless_after):
            return True
    return False


def walked_terms(node: Any, policy: SegmentationPolicy) -> frozenset[str]:
    strings = [cleaned(text) for text in walked_strings(node)]
    return frozenset(
        category.name
        for category in policy.code_sets.categories
        for term in category.terms
        if any(term_found(term, text) for text in strings)
    )


def walked_categories(node: Any, policy: SegmentationPolicy) -> frozenset[str]:
    """Every element visited by recursion: Codings (a ``code`` string or number),
    ``valueCode`` strings, and ``security`` lists read as labels too."""
    names: set[str] = set()
    if isinstance(node, list):
        for item in node:
            names |= walked_categories(item, policy)
    elif isinstance(node, Mapping):
        code = node.get("code")
        system = node.get("system")
        system = system if isinstance(system, str) else None
        if isinstance(code, str) or (isinstance(code, int) and not isinstance(code, bool)):
            names |= scanned_names_for_code(policy, system, str(code))
        for key, value in node.items():
            if key == "valueCode" and isinstance(value, str):
                names |= scanned_names_for_code(policy, None, value)
            if key == "security" and isinstance(value, list):
                for coding in value:
                    if not isinstance(coding, Mapping):
                        continue
                    label_system, label = coding.get("system"), coding.get("code")
                    if not isinstance(label, str):
                        continue
                    if isinstance(label_system, str) and system_identity(label_system)[1]:
                        wanted = {canonical_system(label_system)}
                    else:  # no system, or one we do not know: every label system
                        wanted = {s for c in policy.code_sets.categories
                                  for s, _ in c.security_labels}  # fmt: skip
                    names |= {
                        c.name
                        for c in policy.code_sets.categories
                        if any((s, label.strip()) in c.security_labels for s in wanted)
                    }
            names |= walked_categories(value, policy)
    return frozenset(names)


def walked_references(resource: Mapping[str, Any], paths: tuple[str, ...]) -> list[str]:
    found = []
    for path in paths:
        for value in recursive_values_at(resource, path):
            if isinstance(value, Mapping) and isinstance(value.get("reference"), str):
                reference = value["reference"]
                if reference.startswith(("#", "urn:")):
                    continue
                parts = reference.split("/")
                if "_history" in parts:
                    parts = parts[: parts.index("_history")]
                if len(parts) >= 2 and parts[-2] and parts[-1]:
                    found.append(f"{parts[-2]}/{parts[-1]}")
    return found


# -- inputs: JSON trees with the elements segmentation reads, and awkward leaves

REFERENCES = [
    "Encounter/e1",
    "Condition/c1",
    "Medication/m1",
    "Organization/o1",
    "https://other.example/fhir/Organization/o2",
    "Encounter/e2/_history/3",
    "https://other.example/fhir/Condition/c9/_history/1",
    "_history/1",
    "Organization/",
    "#contained-1",
    "urn:uuid:5f1c",
    "Patient",
]
SENSITIVE = sorted(
    {pair for c in SHIPPED_CODE_SETS.categories for pair in c.codes | c.security_labels}
    | {(s, p + "9") for c in SHIPPED_CODE_SETS.categories for s, p in c.code_prefixes}
)
CODES = st.one_of(
    st.sampled_from(SENSITIVE),
    st.sampled_from([(ICD10CM, "f10.20"), (ICD10CM, " B20 "), (SNOMED, "195967001")]),
    st.sampled_from(["http://hl7.org/fhir/sid/icd-10", ICD10CM, SNOMED]).flatmap(
        lambda s: st.tuples(st.just(s), st.text("FBZ0123.", max_size=6))
    ),
)
KEYS = st.sampled_from(
    [
        "reference",
        "coding",
        "code",
        "system",
        "security",
        "target",
        "item",
        "encounter",
        "context",
        "diagnosis",
        "condition",
        "reasonReference",
        "medicationReference",
        "provider",
        "x",
    ]
)
# Free text: terms, their near misses and their disguises, among plain words.
WORDS = st.sampled_from(
    ["HIV disease", "hiv", "ＨＩＶ", "H\u00adIV", "H&#73;V", "archive", "hivx", "x_hiv",
     "HEARING AIDS", "hearing\nAIDS", "AIDS", "aids", "first  AIDS", "PrEP", "bowel prep",
     "Opioid-use  disorder", "opioid use", "BRCA1", "Abortion", "child abuse", "abuse",
     "Suboxone", "Riverside Opioid Treatment Program", "depression screening", "note",
     "visit", "\u00e9t\u00e9", "\"quoted\" hiv", "back\\slash"]
)  # fmt: skip
TEXTS = st.lists(WORDS, min_size=1, max_size=3).map(" ".join)
LEAVES = st.one_of(
    TEXTS,
    st.builds(lambda t: {"text": t}, TEXTS),
    st.builds(lambda t: {"display": t}, TEXTS),
    st.builds(lambda t: {"code": t}, TEXTS),  # a code, not words
    st.builds(lambda t: {"id": t}, TEXTS),  # a key, not words
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from(REFERENCES),
    st.builds(lambda r: {"reference": r}, st.sampled_from(REFERENCES)),
    st.builds(lambda sc: {"system": sc[0], "code": sc[1]}, CODES),
    st.builds(lambda sc: {"coding": [{"system": sc[0], "code": sc[1]}, None]}, CODES),
    st.builds(lambda sc: {"code": sc[1]}, CODES),  # no system: a code, or a label, judged widely
)
TREES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
TYPES = st.sampled_from(
    [*sorted(CLINICAL_TYPES), "Provenance", "Encounter", "Patient", "CarePlan", "Unknown",
     *sorted(PROGRAM_TYPES)]
)  # fmt: skip


@st.composite
def resources(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": draw(TYPES), "id": "r1"}
    resource["code"] = draw(TREES)
    for key in draw(st.lists(KEYS, max_size=4)):
        resource[key] = draw(TREES)
    labelled = st.builds(lambda t: {"security": t}, TREES)
    resource["meta"] = draw(st.one_of(st.none(), TREES, labelled))
    if depth == 0 and draw(st.booleans()):
        resource["contained"] = draw(st.lists(resources(depth=1), max_size=2))
    return resource


# -- element paths


@given(TREES, st.lists(KEYS, max_size=3))
@settings(max_examples=300)
def test_an_element_path_reads_what_the_recursive_walk_yields(node: Any, steps: list[str]) -> None:
    path = tuple(steps)
    expected = list(recursive_values_at(node, path))
    assert ElementPath(path).values(node) == expected
    assert list(values_at(node, path)) == expected
    if steps:
        assert list(values_at(node, ".".join(steps))) == expected


def test_an_element_path_flattens_nested_lists_in_order_and_skips_what_is_not_an_element() -> None:
    node = {
        "item": [
            [{"encounter": {"reference": "Encounter/a"}}, "text", 3],
            None,
            {"encounter": [[{"reference": "Encounter/b"}], {"reference": "Encounter/c"}]},
            MappingProxyType({"encounter": {"reference": "Encounter/d"}}),
            {"encounter": None},
        ]
    }
    got = element_path("item.encounter.reference").values(node)
    assert got == ["Encounter/a", "Encounter/b", "Encounter/c", "Encounter/d"]
    assert element_path("item.encounter") is element_path("item.encounter")  # split once
    assert element_path(()).values([1, [2, [3]], None]) == [1, 2, 3, None]


# -- codes and labels


@given(resources())
@settings(max_examples=300)
def test_categories_are_those_a_scan_of_every_category_finds(resource: dict[str, Any]) -> None:
    policy = DEFAULT_SEGMENTATION
    expected = walked_categories(resource, policy) | walked_terms(resource, policy)
    assert sensitive_categories_of(resource) == expected


def test_a_code_looked_up_again_gives_the_same_categories() -> None:
    index = SegmentationPolicy()._index
    for system, code in [(ICD10CM, "F10.20"), (ICD10CM, "f1020"), (SNOMED, "195967001")]:
        first = index.names_for_code(system, code)
        assert index.names_for_code(system, code) == first
        assert first == scanned_names_for_code(DEFAULT_SEGMENTATION, system, code)
    assert index.names_for_code(ICD10CM, "F10.20")  # a prefix family
    assert index.names_for_code("http://hl7.org/fhir/sid/icd-10", "f10.20")  # an alias


def test_the_code_cache_is_bounded(monkeypatch: Any) -> None:
    from payerbridge.consent import recognition

    monkeypatch.setattr(recognition, "_MOST_CACHED_CODES", 3)
    index = SegmentationPolicy()._index
    for n in range(10):
        assert index.names_for_code(SNOMED, str(n)) == frozenset()
    assert len(index._by_code) <= 3
    assert index.names_for_code(ICD10CM, "F10.20") == scanned_names_for_code(
        DEFAULT_SEGMENTATION, ICD10CM, "F10.20"
    )


def test_a_label_on_a_contained_resource_or_a_listed_meta_still_counts() -> None:
    label = next(iter(SHIPPED_CODE_SETS.categories[0].security_labels))
    security = [{"system": label[0], "code": label[1]}]
    contained = {"resourceType": "Medication", "id": "m", "meta": {"security": security}}
    plain: dict[str, Any] = {"resourceType": "Coverage", "id": "c", "meta": {"versionId": "1"}}
    assert not sensitive_categories_of(plain)
    assert sensitive_categories_of({**plain, "contained": [contained]})
    assert sensitive_categories_of({**plain, "meta": [{"security": security}]})


# -- references a judgement is about


@given(resources())
@settings(max_examples=300)
def test_a_judgement_is_about_what_the_walked_references_name(resource: dict[str, Any]) -> None:
    policy = DEFAULT_SEGMENTATION
    judgement = judge(resource, policy)
    resource_type = resource["resourceType"]
    if resource_type == "Provenance":
        about: tuple[str, ...] = ("target",)
    elif resource_type == "Encounter":
        about = ("diagnosis.condition", "reasonReference")
    else:
        about = {
            "MedicationRequest": ("medicationReference",),
            "MedicationDispense": ("medicationReference",),
            "ExplanationOfBenefit": ("diagnosis.diagnosisReference", "provider"),
            "Claim": ("diagnosis.diagnosisReference", "provider"),
        }.get(resource_type, ())
    assert judgement.about == tuple(walked_references(resource, about))
    care = walked_references(resource, ("encounter", "item.encounter", "context"))
    assert judgement.recorded_in == tuple(t for t in care if t.startswith("Encounter/"))
    names = walked_categories(resource, policy) | walked_terms(resource, policy)
    assert judgement.sensitive == bool(names)
    assert judgement.is_program == (resource_type in PROGRAM_TYPES and "substance-use" in names)
    assert sorted(judgement.refers_to) == sorted(
        key
        for key in (reference_key(r) for r in walked_reference_strings(resource))
        if key is not None and key.split("/")[0] in PROGRAM_TYPES
    )
    paths = ("target", "item.encounter", "x")
    assert list(references_at(resource, paths)) == walked_references(resource, paths)


def test_absolute_versioned_contained_and_bundle_local_references() -> None:
    provenance = {
        "resourceType": "Provenance",
        "id": "p",
        "target": [
            {"reference": "https://other.example/fhir/Condition/c1/_history/2"},
            {"reference": "#c"},
            {"reference": "urn:uuid:1"},
            {"reference": "Encounter/e1/_history/1"},
            {"display": "no reference"},
        ],
    }
    judgement = judge(provenance)
    assert judgement.about == ("Condition/c1", "Encounter/e1")
    assert judgement.about_all
