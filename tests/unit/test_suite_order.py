"""The order modules are handed to the test workers (tests/ordering.py, ADR 0028)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.ordering import LONGEST, module_rank

ROOT = Path(__file__).resolve().parents[2]


def test_every_module_named_longest_exists() -> None:
    """A renamed or removed module would silently lose its place in the front row."""
    assert [path for path in LONGEST if not (ROOT / path).is_file()] == []
    assert len(set(LONGEST)) == len(LONGEST)


def test_the_longest_come_first_then_end_to_end_integration_and_unit() -> None:
    every = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests").rglob("test_*.py"))
    ordered = sorted(every, key=module_rank)
    assert ordered[: len(LONGEST)] == list(LONGEST)
    tiers = [path.split("/")[1] for path in ordered[len(LONGEST) :]]
    assert tiers == sorted(tiers, key=["e2e", "integration", "golden", "unit"].index)


@given(st.lists(st.sampled_from(LONGEST), min_size=2, max_size=2, unique=True))
def test_the_longest_keep_their_measured_order(pair: list[str]) -> None:
    first, second = pair
    assert (module_rank(first) < module_rank(second)) == (
        LONGEST.index(first) < LONGEST.index(second)
    )
