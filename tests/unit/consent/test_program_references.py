"""The programs, sites and roles a record refers to, read from its references: the same
as their keys name, whether the fast reading of a relative ``Type/id`` or the full one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from payerbridge.consent.segmentation import PROGRAM_TYPES, _programs, reference_key

_SEGMENT = st.sampled_from(
    ["Organization", "Location", "Patient", "HealthcareService", "#x", "urn:uuid:1", "http:"]
    + ["", "a", "_history", "1"]
)


@given(st.lists(st.lists(_SEGMENT, min_size=1, max_size=5).map("/".join), max_size=6))
def test_the_programs_among_references_are_those_their_keys_name(references: list[str]) -> None:
    by_key = tuple(
        key
        for reference in references
        if (key := reference_key(reference)) is not None and key.partition("/")[0] in PROGRAM_TYPES
    )
    assert _programs(references) == by_key
