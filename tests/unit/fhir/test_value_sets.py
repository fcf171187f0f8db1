"""Expanding ValueSets from what the packages hold (``fhir.value_sets``)."""

from __future__ import annotations

from payerbridge.fhir.value_sets import Terminology

SYSTEM = "http://example.org/cs"
CODE_SYSTEM = {
    "url": SYSTEM,
    "content": "complete",
    "concept": [
        {"code": "a", "concept": [{"code": "a1", "concept": [{"code": "a11"}]}]},
        {"code": "b"},
    ],
}


def _terms(*value_sets: dict) -> Terminology:
    return Terminology(list(value_sets), [CODE_SYSTEM])


def test_listed_concepts_and_whole_held_systems() -> None:
    terms = _terms(
        {
            "url": "vs:listed",
            "compose": {"include": [{"system": SYSTEM, "concept": [{"code": "b"}]}]},
        },
        {"url": "vs:whole", "compose": {"include": [{"system": SYSTEM}]}},
    )
    listed, whole = terms.rule("vs:listed"), terms.rule("vs:whole|1.0")
    assert listed is not None and whole is not None
    assert listed.admits(SYSTEM, "b") and not listed.admits(SYSTEM, "a")
    assert whole.admits(SYSTEM, "a11") and not whole.admits(SYSTEM, "zz")
    assert whole.admits(None, "a1")  # a bare code element
    assert not whole.admits("http://other", "a")


def test_is_a_filters_follow_the_hierarchy_and_others_take_the_system() -> None:
    terms = _terms(
        {
            "url": "vs:isa",
            "compose": {
                "include": [
                    {
                        "system": SYSTEM,
                        "filter": [{"property": "concept", "op": "is-a", "value": "a1"}],
                    }
                ]
            },
        },
        {
            "url": "vs:below",
            "compose": {
                "include": [
                    {
                        "system": SYSTEM,
                        "filter": [{"property": "concept", "op": "descendent-of", "value": "a"}],
                    }
                ]
            },
        },
        {
            "url": "vs:other",
            "compose": {
                "include": [
                    {
                        "system": "http://loinc.org",
                        "filter": [{"property": "CLASSTYPE", "op": "=", "value": "1"}],
                    }
                ]
            },
        },
    )
    isa, below, other = terms.rule("vs:isa"), terms.rule("vs:below"), terms.rule("vs:other")
    assert isa is not None and below is not None and other is not None
    assert isa.admits(SYSTEM, "a1") and isa.admits(SYSTEM, "a11") and not isa.admits(SYSTEM, "a")
    assert below.admits(SYSTEM, "a1") and not below.admits(SYSTEM, "a")
    assert other.admits("http://loinc.org", "anything") and not other.admits(SYSTEM, "a")


def test_imports_unite_and_an_import_not_held_cannot_be_expanded() -> None:
    terms = _terms(
        {"url": "vs:b", "compose": {"include": [{"system": SYSTEM, "concept": [{"code": "b"}]}]}},
        {
            "url": "vs:union",
            "compose": {
                "include": [{"valueSet": ["vs:b"]}, {"system": "http://snomed.info/sct"}],
                "exclude": [{"system": SYSTEM, "concept": [{"code": "b"}]}],
            },
        },
        {"url": "vs:lost", "compose": {"include": [{"valueSet": ["vs:nowhere"]}]}},
    )
    union = terms.rule("vs:union")
    assert union is not None
    assert not union.admits(SYSTEM, "b")  # excluded
    assert union.admits("http://snomed.info/sct", "12345")
    assert terms.rule("vs:lost") is None
    assert terms.rule("vs:unknown") is None and not terms.holds("vs:unknown")


def test_a_package_falls_back_to_every_shipped_package() -> None:
    everything = _terms({"url": "vs:shared", "compose": {"include": [{"system": SYSTEM}]}})
    package = Terminology([], [], fallback=everything)
    assert package.holds("vs:shared")
    rule = package.rule("vs:shared")
    assert rule is not None and rule.admits(SYSTEM, "b")
