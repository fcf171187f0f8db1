"""The weight of an X12 finding (``x12_findings``, ADR 0056): what changes a record's
meaning quarantines it, the rest is a warning; and, through the reader, the 278 reviews
(which pyx12 has no map for) refused when nothing names them."""

from __future__ import annotations

import io
from typing import Any

import pytest

from payerbridge.backends.mapping import BUILT_IN_MAPPINGS
from payerbridge.backends.model import RecordProblem, SourceRecord
from payerbridge.backends.x12 import read_x12
from payerbridge.backends.x12_findings import (
    RECORD,
    WARNING,
    element_weight,
    envelope_weight,
    reader_weight,
    segment_weight,
)


class Segment:
    """A segment as pyx12 gives it, enough for the weight: its first element."""

    def __init__(self, first: str) -> None:
        self.first = first

    def get_value(self, ref: str) -> str:
        return self.first if ref == "01" else ""


@pytest.mark.parametrize(
    ("kind", "code", "ref", "first", "severity", "what"),
    [
        ("837I", "7", "N403", "", WARNING, "code"),  # a ZIP code's layout
        ("837I", "5", "CLM05-01", "", WARNING, "length"),  # a facility code's length
        ("837P", "1", "CLM05-02", "", WARNING, "missing-element"),
        ("837P", "10", "CLM06", "", WARNING, "not-used"),
        ("837P", "1", "CLM01", "", RECORD, "missing-element"),  # the claim's identifier
        ("837P", "1", "NM109", "IL", RECORD, "missing-element"),  # the member id
        ("837P", "1", "NM109", "PR", WARNING, "missing-element"),  # a payer's id
        ("837P", "8", "DTP03", "472", RECORD, "date"),  # a service date that is none
        ("834", "7", "DMG03", "D8", RECORD, "code"),  # the member's gender
        ("834", "4", "REF02", "0F", RECORD, "length"),  # the subscriber id
        ("834", "4", "REF02", "1L", WARNING, "length"),  # a group number
        ("834", "6", "INS06-01", "", WARNING, "character"),
    ],
)  # fmt: skip
def test_an_element_finding_weighs_by_what_it_touches(
    kind: str, code: str, ref: str, first: str, severity: str, what: str
) -> None:
    weight = element_weight(kind, code, ref, Segment(first))
    assert (weight.severity, weight.kind) == (severity, what)


@pytest.mark.parametrize(
    ("code", "text", "severity", "what"),
    [
        ("1", "Segment DTP not found.  Started at /x", WARNING, "order"),
        ("2", "Segment CLM06 found but marked as not used", WARNING, "not-used"),
        ("3", 'Mandatory loop "Other Payer Name" (2330B) missing', WARNING, "missing-segment"),
        ("3", 'Mandatory loop "Service Line Number" (2400) missing', RECORD, "missing-segment"),
        ("3", 'Mandatory segment "Claim Information" (CLM) missing', RECORD, "missing-segment"),
        ("3", 'Mandatory segment "Principal Diagnosis" (HI) missing', WARNING, "missing-segment"),
        ("5", "Segment REF exceeded max count.  Found 3, should have 1", WARNING, "repeat-count"),
    ],
)  # fmt: skip
def test_a_segment_finding_weighs_by_what_is_missing(
    code: str, text: str, severity: str, what: str
) -> None:
    weight = segment_weight(code, text)
    assert (weight.severity, weight.kind) == (severity, what)


def test_tokenizer_and_envelope_findings() -> None:
    assert reader_weight("HL2").quarantines and not reader_weight("HL1").quarantines
    assert reader_weight("LX").kind == "numbering" and reader_weight("SEG1").kind == "syntax"
    assert envelope_weight("st", "4").kind == "count"  # type: ignore[union-attr]
    assert envelope_weight("gs", "5").kind == "count"  # type: ignore[union-attr]
    assert envelope_weight("isa", "001").kind == "control-number"  # type: ignore[union-attr]
    assert envelope_weight("st", "23").kind == "control-number"  # type: ignore[union-attr]
    # A trailer missing: the records cannot be delimited; the envelope is refused.
    for missing in [("st", "2"), ("gs", "3"), ("isa", "023"), ("isa", "024")]:
        assert envelope_weight(*missing) is None


DENIED = BUILT_IN_MAPPINGS / "x12-278-prior-auth/1.0.0/examples/denied.278"


def _items(text: str) -> list[Any]:
    return list(read_x12(io.BytesIO(text.encode()), "f.278", {"kinds": ["278"]}))


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("*MI*M1001~", "*MI~", "no member identifier (2010C NM109)"),
        ("TRN*2*PA0044*", "TRN*2**", "no trace number (TRN02) nor certification number"),
    ],
)
def test_a_278_review_without_its_member_or_trace_is_refused(
    old: str, new: str, reason: str
) -> None:
    text = DENIED.read_text()
    assert old in text and all(isinstance(i, SourceRecord) for i in _items(text))
    items = _items(text.replace(old, new, 1))
    (problem,) = items
    assert isinstance(problem, RecordProblem) and reason in problem.text
    assert problem.location.segment_id == "HL" and problem.record is not None
