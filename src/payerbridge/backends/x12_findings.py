"""How much an X12 finding weighs (pure): whether it changes what a record means, and so
quarantines the record, or is said as a warning while the record is mapped (ADR 0056).

pyx12 says what kind each finding is by its X12 error code (the codes a 999 carries):
an element error (IK403: 1 required element missing ... 10 element not used), a segment
error of its map walker (IK304: 1 segment not expected where found, 2 not used, 3
mandatory segment or loop missing, 4/5 over its maximum use), a tokenizer error (HL
numbering, LX numbering, a trailing separator). It gives no severity: X12 rejects on
every one. A plan loading its history cannot afford that, so the weight is decided
here by what the finding touches:

- what identifies the record or its member (the claim's CLM01, the member's REF*0F,
  the subscriber's NM109, birth date and gender, an 834's INS01/INS02, a 278's TRN02 and
  decision HCR01, the HL structure), a date that is not a date, a claim without a
  service line, a missing loop or segment that carries identity: ``RECORD``, the record
  is quarantined with the reason and the segment's position;
- everything else (a ZIP+4 layout, a code's length or list, a segment in another order
  than the guide prefers, an element the guide does not use, a count): ``WARNING``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RECORD",
    "WARNING",
    "Weight",
    "element_weight",
    "envelope_weight",
    "missing_in_record",
    "reader_weight",
    "segment_weight",
]

RECORD = "record"
WARNING = "warning"


@dataclass(frozen=True)
class Weight:
    severity: str  # RECORD or WARNING
    kind: str  # what an ingest report groups warnings by
    code: str = "structure"  # the OperationOutcome issue code: structure, or value

    @property
    def quarantines(self) -> bool:
        return self.severity == RECORD


# Elements that identify a record or its member, by transaction kind. A qualified
# element is written "<ref>@<qualifier>" (the segment's first element: NM101, REF01).
_IDENTITY = {
    "834": frozenset(
        ["INS01", "INS02", "REF02@0F", "NM109@IL", "NM103@IL", "DMG02", "DMG03", "HL01"]
    ),
    "837": frozenset(
        ["CLM01", "NM109@IL", "NM109@85", "NM103@IL", "DMG02", "DMG03", "HL01", "HL02", "HL03"]
    ),
    "278": frozenset(
        ["TRN02", "HCR01", "UM01", "UM02", "NM109@IL", "DMG02", "HL01", "HL02", "HL03"]
    ),
}
# Loops and segments whose absence leaves a record without its identity or its content.
_IDENTITY_LOOPS = frozenset(["2010AA", "2010BA", "2300", "2400", "2000", "2100A", "2000E"])
_IDENTITY_SEGMENTS = frozenset(["CLM", "INS", "LX", "SV1", "SV2", "SV3", "SVD", "HL", "TRN"])
_ELEMENT_KINDS = {
    "1": "missing-element",
    "2": "missing-element",
    "3": "repetition",
    "4": "length",
    "5": "length",
    "6": "character",
    "7": "code",
    "8": "date",
    "9": "time",
    "10": "not-used",
}
_MISSING = re.compile(r"\(([A-Z0-9]{2,6})\) missing")


def _family(kind: str) -> str:
    return "837" if kind.startswith("837") else kind


def element_weight(kind: str, code: str, refdes: str, segment: Any) -> Weight:
    """An element error (``segment_if.is_valid_errors``) of ``segment`` in a ``kind``
    transaction: ``refdes`` is the element (``CLM05-01``), ``code`` pyx12's IK403 code
    (None: a segment syntax rule)."""
    found = _ELEMENT_KINDS.get(code, "syntax")
    ref = refdes.split("-")[0][:6]
    qualifier = str(_value(segment, 1))[:3]
    identity = _IDENTITY.get(_family(kind), frozenset())
    if ref in identity or f"{ref}@{qualifier}" in identity:
        return Weight(RECORD, found, "value")
    if code in ("8", "9"):
        return Weight(RECORD, found, "value")  # a date or time that is none: the meaning is gone
    return Weight(WARNING, found, "value")


def segment_weight(code: str, text: str) -> Weight:
    """A segment error of pyx12's map walker (IK304 code), with the walker's text."""
    if code == "3":
        missing = _MISSING.search(text)
        what = missing.group(1) if missing else ""
        if what in _IDENTITY_LOOPS or what in _IDENTITY_SEGMENTS:
            return Weight(RECORD, "missing-segment")
        return Weight(WARNING, "missing-segment")
    if code == "1":
        return Weight(WARNING, "order")
    if code == "2":
        return Weight(WARNING, "not-used")
    return Weight(WARNING, "repeat-count")


def reader_weight(code: str) -> Weight:
    """A tokenizer error of pyx12's ``X12Reader`` (its code)."""
    if code == "HL2":
        return Weight(RECORD, "hierarchy")  # an HL whose parent is not open: unplaceable
    if code in ("HL1", "LX"):
        return Weight(WARNING, "numbering")
    return Weight(WARNING, "syntax")


def envelope_weight(level: str, code: str) -> Weight | None:
    """An envelope error of the first pass: a warning (a count or control number that
    disagrees, a control number used twice: the records are still delimited by their
    ST/SE), or None when the envelope cannot be trusted (a trailer missing)."""
    counts = {("isa", "021"), ("gs", "5"), ("st", "4")}
    controls = {("isa", "001"), ("gs", "4"), ("st", "3")}
    repeated = {("isa", "025"), ("gs", "6"), ("st", "23")}
    if (level, code) in counts:
        return Weight(WARNING, "count")
    if (level, code) in controls or (level, code) in repeated:
        return Weight(WARNING, "control-number")
    return None


def missing_in_record(kind: str, data: dict[str, Any]) -> str | None:
    """What a record lacks that it cannot mean anything without, as a reason (no
    values), or None: a claim without a service line or a member id, a member without a
    subscriber identifier or a name, a review without its member id or trace number."""
    if kind.startswith("837"):
        subscriber = _path(data, "2000A", "2000B", "2010BA")
        if not _qualified_value(subscriber, "NM1", None, "NM109"):
            return "its subscriber has no member identifier (2010BA NM109)"
        claim = _path(data, "2000A", "2000B", "2000C", "2300") or _path(
            data, "2000A", "2000B", "2300"
        )
        if claim is not None and not claim.get("2400"):
            return "the claim has no service line (loop 2400)"
        return None
    if kind == "834":
        member = _path(data, "2000")
        if member is not None and not _qualified_value(member, "REF", "0F", "REF02"):
            return "the member has no subscriber identifier (REF*0F)"
        if member is not None and not member.get("2100A"):
            return "the member has no name loop (2100A)"
    if kind == "278":
        return _missing_in_review(data)
    return None


def _missing_in_review(data: dict[str, Any]) -> str | None:
    """A 278 event (2000E) without what names it or its member (pyx12 has no 278 map:
    nothing else checks these)."""
    subscriber = _path(data, "2000A", "2000B", "2000C", "2010C")
    if not _qualified_value(subscriber, "NM1", None, "NM109"):
        return "its subscriber has no member identifier (2010C NM109)"
    holder = _path(data, "2000A", "2000B", "2000C")
    event = _path(holder or {}, "2000D", "2000E") or _path(holder or {}, "2000E")
    if event is not None and not (
        _qualified_value(event, "TRN", None, "TRN02")
        or _qualified_value(event, "HCR", None, "HCR02")
    ):
        return "the review has no trace number (TRN02) nor certification number (HCR02)"
    return None


def _path(data: dict[str, Any], *loops: str) -> dict[str, Any] | None:
    current: dict[str, Any] | None = data
    for loop in loops:
        found = (current or {}).get(loop)
        if not found:
            return None
        current = found[0]
    return current


def _qualified_value(loop: dict[str, Any] | None, sid: str, qualifier: str | None, ref: str) -> str:
    for segment in (loop or {}).get(sid, []):
        if qualifier is None or segment.get(f"{sid}01") == qualifier:
            value = segment.get(ref, "")
            if isinstance(value, str) and value.strip():
                return value
    return ""


def _value(segment: Any, index: int) -> str:
    try:
        value = segment.get_value(f"{index:02d}")
    except (AttributeError, IndexError, KeyError, TypeError):
        return ""
    return value if isinstance(value, str) else ""
