"""What a mapping's output loses before it is a resource: nulls, empty strings, empty
arrays and empty objects, at any depth, and nothing else (0, false, 0.0 stay; an
integral float becomes an int). Checked on generated JSON against the rule as stated."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from payerbridge.backends.mapping import _pruned

_EMPTY = (None, "", [], {})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", " ", "a"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from("abcd"), inner, max_size=4)
    ),
    max_leaves=20,
)


def _as_stated(value: Any) -> Any:
    if isinstance(value, dict):
        kept = {k: _as_stated(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if not _is_empty(v)}
    if isinstance(value, list):
        return [v for v in map(_as_stated, value) if not _is_empty(v)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _is_empty(value: Any) -> bool:
    # By type and value: 0 == False, but neither is empty.
    return any(type(value) is type(e) and value == e for e in _EMPTY)


@given(json_values)
def test_pruned_drops_the_empty_and_keeps_every_other_value(value: Any) -> None:
    pruned = _pruned(value)
    assert pruned == _as_stated(value)
    assert repr(pruned) == repr(_as_stated(value))  # False stays False, 0 stays 0


def test_falsy_values_that_are_data_stay() -> None:
    value = {"a": 0, "b": False, "c": 0.0, "d": [None, "", {}, []], "e": {"f": None}}
    assert _pruned(value) == {"a": 0, "b": False, "c": 0}
