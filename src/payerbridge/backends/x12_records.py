"""How the X12 reader turns segments into records' plain JSON (pure).

A segment is an object keyed by element reference (``"CLM01"``); an empty element is
left out; a composite is an array of its components (trailing empty ones dropped),
always an array where the map (or, without a map, the transaction's table) says the
element is a composite, even when it holds one component. Repetitions (``^`` in 5010)
are not split: pyx12 does not split them either. A loop is an object
``{"loop": "2300", "<segment id>": [segments...], "<child loop id>": [loops...]}``.

A record is the transaction set cut down to one record: the root object holds the
envelope (``ISA``, ``GS``), the header (``ST``, ``BHT``/``BGN``, ``1000A``, ``1000B``...)
and ``kind``, ``implementation`` (GS08), ``validation`` (the pyx12 map used, or
``"envelope"``) and ``parameters``; then each loop on the way to the record (for an
837 claim ``2000A`` -> ``2000B`` [-> ``2000C``] -> ``2300``) appears once, with its own
segments and its context loops (``2010AA``, ``2010BA``...), and only the branch that
leads to this record. The record's own loop holds everything under it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from payerbridge.backends.model import RecordProblem

__all__ = [
    "Frame",
    "KINDS",
    "Kind",
    "claim_id_of",
    "kind_of",
    "not_read_text",
    "record_key",
    "segment_json",
]


@dataclass(frozen=True)
class Kind:
    """A transaction the reader maps: what one record of it is."""

    name: str  # "837P"
    record_loop: str  # the loop one record is
    chain: frozenset[str]  # the loops on the way to a record (kept once per record)
    noun: str  # what an operator calls a record


_837_CHAIN = frozenset(["2000A", "2000B", "2000C", "2300"])
KINDS: dict[str, Kind] = {
    "834": Kind("834", "2000", frozenset(["2000"]), "member"),
    "837P": Kind("837P", "2300", _837_CHAIN, "claim"),
    "837I": Kind("837I", "2300", _837_CHAIN, "claim"),
    "837D": Kind("837D", "2300", _837_CHAIN, "claim"),
    "278": Kind("278", "2000E", frozenset(["2000A", "2000B", "2000C", "2000D", "2000E"]), "review"),
}


# What a functional group holds, by GS01 (and, for claims, GS08's guide), to name what
# a source does not read in one line.
_TRANSACTIONS = {
    "HC": "837 health care claim",
    "HP": "835 remittance advice",
    "HB": "271 eligibility response",
    "HS": "270 eligibility inquiry",
    "BE": "834 benefit enrollment",
    "HI": "278 services review",
    "HN": "277 claim status response",
    "HR": "276 claim status request",
    "FA": "999 implementation acknowledgment",
    "RA": "820 premium payment",
}
_CLAIM_GUIDES = {
    "X222": "837P professional claim",
    "X098": "837P professional claim",
    "X223": "837I institutional claim",
    "X096": "837I institutional claim",
    "X224": "837D dental claim",
    "X097": "837D dental claim",
}


def kind_of(gs01: str, st01: str | None, gs08: str) -> str | None:
    """What the reader calls a transaction: 834, 837P/I/D, 278; None when it does not
    map it."""
    if gs01 == "BE" and st01 in (None, "834") and gs08.startswith("005010X220"):
        return "834"
    if gs01 == "HC" and st01 in (None, "837"):
        return {"005010X222": "837P", "005010X223": "837I", "005010X224": "837D"}.get(gs08[:10])
    if gs01 == "HI" and st01 in (None, "278") and gs08.startswith("005010X217"):
        return "278"
    return None


def not_read_text(gs01: str, gs08: str, version: str, kinds: frozenset[str]) -> str | None:
    """Why a functional group is not read, in one line (None: it is): a version other
    than 5010, or a transaction the source does not read. GS08 and GS01 are codes."""
    guide = re.sub(r"[^A-Za-z0-9]", "", gs08)[:12] or "(none)"
    what = _TRANSACTIONS.get(gs01, f"GS01 {re.sub(r'[^A-Za-z0-9]', '', gs01)[:2]} group")
    if gs01 == "HC":
        what = _CLAIM_GUIDES.get(guide[6:10], what)
    what = f"{'an' if what.startswith('8') else 'a'} {what}"
    reads = ", ".join(sorted(kinds))
    if version != "00501" or not guide.startswith("005010"):
        return f"version {guide} is not read; 5010 only (this functional group is {what})"
    kind = kind_of(gs01, None, gs08)
    if kind is None or kind not in kinds:
        return (
            f"this functional group is {what} ({guide}); this source reads {reads}: "
            "its transaction sets were skipped"
        )
    return None


@dataclass
class Frame:
    """An open loop while the reader walks a transaction set."""

    loop: str  # "" for the transaction set itself
    obj: dict[str, Any]
    position: int
    segment_id: str
    chain: bool
    hl: str | None = None
    child: Frame | None = None  # the open chain loop under this one
    # Problems of a record loop, reported when it closes (with its key).
    problems: list[tuple[int, str, str, str]] = field(default_factory=list)
    faulty_at: int | None = None  # a context loop with errors: where the first one was
    # Warnings found in this loop's own segments (a context loop's apply to every
    # record under it).
    warnings: list[RecordProblem] = field(default_factory=list)
    more_warnings: int = 0  # a record loop's warnings past those kept

    def add_segment(self, segment_id: str, value: dict[str, Any]) -> None:
        self.obj.setdefault(segment_id, []).append(value)


def segment_json(elements: Iterable[tuple[list[str], bool]], segment_id: str) -> dict[str, Any]:
    """A segment as JSON from its elements: each a list of component values and
    whether it is a composite."""
    out: dict[str, Any] = {}
    for index, (values, is_composite) in enumerate(elements, 1):
        ref = f"{segment_id}{index:02d}"
        if is_composite or len(values) > 1:
            kept = list(values)
            while kept and kept[-1] == "":
                kept.pop()
            if kept:
                out[ref] = kept
        elif values and values[0] != "":
            out[ref] = values[0].strip() if segment_id == "ISA" else values[0]
    return out


def _first(obj: dict[str, Any] | None, *path: str) -> str:
    """The first value along ``path`` (segment id, element ref...), or ""."""
    current: Any = obj
    for step in path:
        if isinstance(current, list):
            current = current[0] if current else None
        if not isinstance(current, dict):
            return ""
        current = current.get(step)
    if isinstance(current, list):
        current = current[0] if current else None
    return current if isinstance(current, str) else ""


def _qualified(loop: dict[str, Any] | None, segment_id: str, qualifier: str, ref: str) -> str:
    for segment in (loop or {}).get(segment_id, []):
        if segment.get(f"{segment_id}01") == qualifier:
            value = segment.get(ref, "")
            return value if isinstance(value, str) else ""
    return ""


def claim_id_of(record: dict[str, Any]) -> str:
    """An 837 claim's identifier, CLM01 ("" when absent)."""
    return _first(record, "CLM", "CLM01")


def record_key(kind: str, chain: list[Frame], ordinal: int) -> str:
    """The record's identity at the source: 837 billing provider NPI and CLM01; 834
    subscriber id (REF*0F) and the member's place in its family's run of INS loops;
    278 the UMO's id and the patient event's trace number (TRN02, else HCR02)."""
    by_loop = {f.loop: f.obj for f in chain}
    record = chain[-1].obj
    if kind.startswith("837"):
        billing = (by_loop.get("2000A") or {}).get("2010AA", [None])[0]
        return f"{_first(billing, 'NM1', 'NM109')}|{claim_id_of(record)}"
    if kind == "834":
        return f"{_qualified(record, 'REF', '0F', 'REF02')}|{ordinal}"
    umo = (by_loop.get("2000A") or {}).get("2010A", [None])[0]
    trace = _first(record, "TRN", "TRN02") or _first(record, "HCR", "HCR02")
    return f"{_first(umo, 'NM1', 'NM109')}|{trace}"


def subscriber_of(kind: str, record: dict[str, Any]) -> str:
    """834: the subscriber id (REF*0F) that groups a family's INS loops."""
    return _qualified(record, "REF", "0F", "REF02") if kind == "834" else ""


def record_data(chain: list[Frame]) -> dict[str, Any]:
    """The pruned tree of a record: copies of the loops on its way (their lists, as
    those loops may still grow), the record loop itself as it is (it is closed)."""
    root = _copied(chain[0].obj)
    current = root
    for frame in chain[1:]:
        obj = frame.obj if frame is chain[-1] else _copied(frame.obj)
        current[frame.loop] = [obj]
        current = obj
    return root


def _copied(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, list) else v for k, v in obj.items()}
