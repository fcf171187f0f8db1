"""Reading a resource's references from its JSON (``references_of``) finds exactly what
walking it finds (``iter_references``), whatever the strings hold: escapes, quotes,
non-ASCII, keys named ``reference`` at any depth, and text that looks like one."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from payerbridge.fhir.resources import iter_references, json_of, references_of

# Strings a reference, or text beside one, may hold: what JSON escapes ("\, control
# characters), a quoted reference written into text, and the usual ``Type/id``.
_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "Patient/p1",
            "Organization/o-1",
            'x","reference":"Patient/evil',
            '"reference":"Organization/o2"',
            "http://example.org/fhir/Location/l1",
            "Organization/\\o",
            "Practitioner/é",
            "#contained",
            "",
        ]
    ),
)
_KEYS = st.sampled_from(["reference", "display", "subject", "text", "valueString", "item"])


def _nodes() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.one_of(_TEXT, st.integers(), st.booleans(), st.none()),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(_KEYS, children, max_size=4),
        ),
        max_leaves=20,
    )


@given(st.dictionaries(_KEYS, _nodes(), max_size=5))
def test_the_json_reading_finds_what_the_walk_finds(resource: dict[str, Any]) -> None:
    walked = Counter(iter_references(resource))
    assert Counter(references_of(resource, json_of(resource))) == walked
    assert Counter(references_of(resource)) == walked


def test_a_resource_json_cannot_hold_is_walked() -> None:
    resource = {"subject": {"reference": "Patient/p1"}, "x": {1: "not a JSON key"}}
    assert json_of(resource) is None
    assert references_of(resource, json_of(resource)) == ["Patient/p1"]
