"""Invariants answered once per distinct input (``fhir/invariant_memo``): the remembered
answer is the evaluated one, for the shipped mappings' resources and generated variants
of them (elements dropped, codes and flags changed), across a shared memo."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.backends.examples import run_example
from payerbridge.backends.mapping import MappingLibrary
from payerbridge.fhir import invariants
from payerbridge.fhir.invariant_memo import memo_key, projection_of
from payerbridge.fhir.profiles import ProfileChecker

_VALUES = ["vision", "professional", "not-applicable", True, False, 1, 2, "x", ""]


@pytest.fixture(scope="module")
def shipped() -> list[dict[str, Any]]:
    library = MappingLibrary()
    found = []
    for ref in library.refs():
        mapping = library.get(ref)
        for example in mapping.examples:
            for resource in run_example(mapping, example).actual["resources"]:
                resource["meta"]["lastUpdated"] = "2026-01-01T00:00:00Z"
                found.append(resource)
    return found


@pytest.fixture(scope="module")
def checker() -> ProfileChecker:
    return ProfileChecker.bundled()


def _mutated(node: Any, rng: random.Random) -> Any:
    if isinstance(node, dict):
        kept = {}
        for key, value in node.items():
            if key not in ("resourceType", "id", "meta") and rng.random() < 0.08:
                continue  # dropped
            kept[key] = _mutated(value, rng)
        return kept
    if isinstance(node, list):
        items = [_mutated(v, rng) for v in node if rng.random() > 0.05]
        return items + ([copy.deepcopy(items[0])] if items and rng.random() < 0.1 else [])
    if rng.random() < 0.1:
        return rng.choice(_VALUES)
    return node


def _issues(checker: ProfileChecker, resource: dict[str, Any], *, memo: bool) -> list[str]:
    invariants.MEMO.enabled = memo
    try:
        return sorted(str(issue) for issue in checker.check(resource))
    finally:
        invariants.MEMO.enabled = True


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_a_remembered_answer_is_the_evaluated_one(
    shipped: list[dict[str, Any]], checker: ProfileChecker, seed: int
) -> None:
    rng = random.Random(seed)
    for resource in rng.sample(shipped, min(8, len(shipped))):
        variant = _mutated(resource, rng)
        assert _issues(checker, variant, memo=True) == _issues(checker, variant, memo=False)


def test_what_an_invariant_reads_is_its_paths_whole_at_their_ends() -> None:
    expression = (
        "type.coding.where(code = 'vision').exists() or "
        "item.productOrService.coding.where(code = 'n').exists().not()"
    )
    projection = projection_of(expression)
    assert projection == {
        "type": {"coding": {"code": {}}},
        "item": {"productOrService": {"coding": {"code": {}}}},
    }
    eob = {
        "resourceType": "ExplanationOfBenefit",
        "type": {"coding": [{"code": "vision"}], "text": "t"},
        "item": [{"sequence": 1, "productOrService": {"coding": [{"code": "a"}]}}],
        "patient": {"reference": "Patient/1"},
    }
    other = {**eob, "item": [{"sequence": 2, "productOrService": {"coding": [{"code": "a"}]}}]}
    assert memo_key(projection, eob, eob) == memo_key(projection, other, other)
    changed = {**eob, "item": [{"productOrService": {"coding": [{"code": "b"}]}}]}
    assert memo_key(projection, eob, eob) != memo_key(projection, changed, changed)


def test_a_filtered_path_is_read_as_its_condition_and_what_follows_name() -> None:
    expression = (
        "supportingInfo.where(category.memberOf('http://example.org/ValueSet/t')).sequence"
        ".subsetOf(%context.item.informationSequence)"
    )
    projection = projection_of(expression)
    assert projection == {
        "supportingInfo": {"category": {}, "sequence": {}},
        "item": {"informationSequence": {}},
    }
    info = {"sequence": 1, "category": {"coding": [{"code": "a"}]}, "valueString": "PA-1"}
    eob = {"resourceType": "ExplanationOfBenefit", "supportingInfo": [info], "item": []}
    other = {**eob, "supportingInfo": [{**info, "valueString": "PA-2"}]}
    assert memo_key(projection, eob, eob) == memo_key(projection, other, other)
    for changed in ({**info, "sequence": 2}, {**info, "category": {"text": "b"}}):
        variant = {**eob, "supportingInfo": [changed]}
        assert memo_key(projection, eob, eob) != memo_key(projection, variant, variant)
    fewer = {**eob, "supportingInfo": []}
    assert memo_key(projection, eob, eob) != memo_key(projection, fewer, fewer)


@pytest.mark.parametrize(
    "expression",
    [
        "supportingInfo.where(category.coding.code = 'x').first().value.exists()",
        "supportingInfo.where(category.coding.code = 'x') = item",
        "supportingInfo.where(code in ('a' | 'b')).exists()",
        "supportingInfo.where(count() > 1).exists()",
        "supportingInfo.where($this.code = 'a').exists()",
        "supportingInfo.where(code = 'a').exists(value = 'b')",
    ],
)
def test_any_other_filter_reads_its_path_whole(expression: str) -> None:
    projection = projection_of(expression)
    assert projection is not None
    assert projection["supportingInfo"] == {}


@pytest.mark.parametrize(
    "expression",
    [
        "%resource.descendants().exists()",
        "contained.where(id = %rootResource.id)",
        "reference.resolve().exists()",
        "start <= today()",
    ],
)
def test_what_reads_beyond_its_paths_is_never_remembered(expression: str) -> None:
    assert projection_of(expression) is None


def test_a_choice_type_and_a_primitive_extension_are_read_with_their_name() -> None:
    projection = projection_of("value.exists() or birthDate.extension.exists()")
    assert projection is not None
    one = {"valueQuantity": {"value": 1}, "_birthDate": {"extension": []}, "x": 1}
    two = {"valueQuantity": {"value": 2}, "_birthDate": {"extension": []}, "x": 1}
    assert memo_key(projection, one, one) != memo_key(projection, two, two)
