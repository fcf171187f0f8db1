"""The X12 reader's first pass: which interchanges, functional groups and transaction
sets have a broken envelope (pure: from a text stream).

pyx12's ``X12Reader`` checks the envelopes as it tokenizes: ISA/IEA, GS/GE and ST/SE
control numbers, the counts in IEA01, GE01 and SE01, trailers missing at the end, a
control number used twice. An SE count is only known at the SE, after the set's claims;
so the reader reads the envelopes first and refuses a broken one before giving any of
its records. Only an envelope that cannot be trusted is refused: a trailer missing (its
records cannot be delimited). A count or control number that disagrees, or a control
number used twice, is a warning (``x12_findings.envelope_weight``): the transaction
set's records are still delimited by its ST and SE, and their content is judged. Only
the findings are kept (a few per envelope), so memory does not grow with the file.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyx12.errors  # type: ignore[import-untyped]
import pyx12.x12file  # type: ignore[import-untyped]

from payerbridge.backends.model import Location, RecordProblem
from payerbridge.backends.x12_findings import envelope_weight

__all__ = ["EnvelopeFaults", "check_envelopes"]

_TEXTS = {
    ("isa", "001"): "IEA02 does not match the ISA13 control number",
    ("isa", "021"): "IEA01 does not count the functional groups of the interchange",
    ("isa", "023"): "the interchange has no IEA trailer",
    ("isa", "024"): "a functional group is not closed (GE) before the IEA",
    ("isa", "025"): "ISA13 repeats the control number of an earlier interchange in the file",
    ("gs", "3"): "the functional group has no GE trailer, or a transaction set in it no SE",
    ("gs", "4"): "GE02 does not match the GS06 control number",
    ("gs", "5"): "GE01 does not count the transaction sets of the group",
    ("gs", "6"): "GS06 repeats the control number of an earlier group in the interchange",
    ("st", "2"): "the transaction set has no SE trailer",
    ("st", "3"): "SE02 does not match the ST02 control number",
    ("st", "4"): "SE01 does not count the segments of the transaction set",
    ("st", "23"): "ST02 repeats the control number of an earlier transaction set in the group",
}
_LEVEL = {"isa": "interchange", "gs": "functional group", "st": "transaction set"}


@dataclass
class EnvelopeFaults:
    """What the first pass found: the problems of each refused envelope, by the
    position of its ISA, GS or ST; whether the file cannot be read at all, or from
    where it cannot be read on."""

    refused: dict[int, list[RecordProblem]] = field(default_factory=dict)
    # Warnings (counts, control numbers) by the position of the ISA, GS or ST they are of.
    warnings: dict[int, list[RecordProblem]] = field(default_factory=dict)
    unreadable: RecordProblem | None = None
    stop_at: int | None = None


def check_envelopes(text: io.TextIOBase, name: str) -> EnvelopeFaults:
    faults = EnvelopeFaults()
    try:
        src = pyx12.x12file.X12Reader(text)
    except (pyx12.errors.X12Error, UnicodeDecodeError, ValueError, IndexError) as exc:
        reason = "it does not begin with a complete ISA segment of 106 characters"
        if "Version" in str(exc):
            reason = "its ISA12 is not an X12 version pyx12 reads (00401, 00501)"
        faults.unreadable = RecordProblem(
            Location(name, segment=1, segment_id="ISA"), f"not an X12 interchange: {reason}"
        )
        return faults
    open_at: dict[str, int] = {}
    position = 0
    segments: Iterator[Any] = iter(src)
    while True:
        try:
            segment = next(segments)
        except StopIteration:
            break
        except Exception as exc:  # noqa: BLE001 - pyx12 raises many kinds
            at = open_at.get("isa", position + 1)
            text_ = f"pyx12 cannot read on from segment {position + 1} ({type(exc).__name__})"
            _refuse(faults, at, Location(name, segment=position + 1), text_, "isa")
            faults.stop_at = at
            return faults
        position = src.get_cur_line()
        sid = segment.get_seg_id()
        if sid in ("ISA", "GS", "ST"):
            open_at[sid.lower()] = position
        for kind, code, *_ in src.pop_errors():
            if kind in _LEVEL:
                text_ = _TEXTS.get((kind, code), f"{kind.upper()} envelope error {code[:4]}")
                where = Location(name, segment=position, segment_id=sid)
                _found(faults, open_at.get(kind, position), where, text_, (kind, code))
    src.cleanup()
    for kind, code, *_ in src.pop_errors():
        if kind in _LEVEL and kind in open_at:
            text_ = _TEXTS.get((kind, code), f"{kind.upper()} envelope error {code[:4]}")
            text_ += f" (the file ends at segment {position})"
            where = Location(name, segment=open_at[kind], segment_id=kind.upper())
            _found(faults, open_at[kind], where, text_, (kind, code))
    return faults


def _found(
    faults: EnvelopeFaults, at: int, where: Location, text: str, error: tuple[str, str]
) -> None:
    """An envelope error: a warning when its records can still be delimited, else the
    envelope's refusal."""
    weight = envelope_weight(*error)
    if weight is None:
        _refuse(faults, at, where, text, error[0])
        return
    found = faults.warnings.setdefault(at, [])
    if len(found) < 20:
        text += f"; the {_LEVEL[error[0]]} is read all the same"
        found.append(RecordProblem(where, text, "structure", severity="warning", kind=weight.kind))


def _refuse(faults: EnvelopeFaults, at: int, where: Location, text: str, kind: str) -> None:
    found = faults.refused.setdefault(at, [])
    if len(found) < 20:
        found.append(RecordProblem(where, f"{text}: the {_LEVEL[kind]} is refused", "structure"))
