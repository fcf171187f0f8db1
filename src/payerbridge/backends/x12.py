"""X12 5010 interchanges read into records with pyx12 4.0.0: an 834's members, an 837's
claims (837P, 837I, 837D), a 278's reviews (pure: from a stream, no database).

The library is pyx12 (ADR 0031's note). The file is first read as it is written
(``x12_layout``: separators from the ISA where the standard places them; a byte-order
mark, blanks and line breaks around and inside segments tolerated and said as layout
warnings). Segments then come from pyx12's tokenizer (``x12file.X12Reader``: ISA/IEA,
GS/GE, ST/SE control numbers and counts; HL and 2400 LX numbering), are placed by its map
walker (``map_walker``) and validated by its maps (``segment_if.is_valid_errors``: usage,
lengths, code lists, dates), as its own ``x12n_document`` does, but segment by segment so
that a file of any size reads in the same memory (no tree of the whole file is built).
Maps: 834 005010X220A1, 837P 005010X222A1 (its errata X222A2 read with it), 837I
005010X223A2 (X223A1 and X223A3 read with it); pyx12 has none for the 5010 278 (X217)
and 837D (X224A2), whose segments are placed by the loop tables of ``x12_loops`` after
the same tokenizer and envelope checks (``validation`` says which in each record).

The JSON of a record is described in ``x12_records``. Positions count segments from 1
at the file's first ISA; a record's ``location`` is its first segment.

What each finding does (ADR 0056; ``x12_findings`` weighs them):

- the file has no readable ISA (none, not fixed width, separators that cannot be
  told apart): the file, in one sentence naming why;
- an envelope that cannot be trusted (ISA or GS elements, ST01 not the group's
  transaction, a trailer missing so that records cannot be delimited): the
  transaction set, functional group or interchange it breaks, named at the segment
  where it was found; the reader checks the envelopes in a first pass (the stream is
  spooled when it cannot seek) so that no record of a broken envelope is ever given;
- a count (SE01, GE01, IEA01) or control number that disagrees, or one used twice: a
  warning (kind ``count`` or ``control-number``), given once and carried by every record
  of the envelope; the content is judged;
- a version other than 5010, or a transaction the mapping does not read (835, 271,
  an 837D where option ``kinds`` leaves it out): that group, named in one line;
- a finding that changes a record's meaning (its identity, a date that is no date, a
  claim without a service line, a missing loop that carries identity): that record is
  refused, each reason at its segment, the first carrying the record as read (for the
  quarantine); in a context loop (an 837's 2000A/2000B/2000C and their 2010 loops),
  every record under it, each named, the error once at its segment;
- any other finding (a ZIP+4 layout, a code's length or list, a segment out of the
  guide's order, an element not used): a warning with its kind and position, given
  before the record it is of (a context loop's: once, when found) and carried by it
  (``SourceRecord.warnings``), which is mapped.

Problem texts never repeat element values (they may be names or member ids): they name
the segment, its position, the element (``DMG02``), the map's element name and X12 codes.

Options (a mapping's ``input_options``): ``kinds`` (the kinds it maps), ``parameters``
(a table copied into every record's ``parameters``, e.g. the plan's member id system).
"""

from __future__ import annotations

import io
import logging
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from typing import Any, BinaryIO

import pyx12.errors  # type: ignore[import-untyped]
import pyx12.map_if  # type: ignore[import-untyped]
import pyx12.map_index  # type: ignore[import-untyped]
import pyx12.params  # type: ignore[import-untyped]
import pyx12.x12file  # type: ignore[import-untyped]
from pyx12.map_walker import walk_tree  # type: ignore[import-untyped]

from payerbridge.backends.model import Location, RecordProblem, SourceRecord
from payerbridge.backends.x12_counts import PathCounts
from payerbridge.backends.x12_envelope import EnvelopeFaults, check_envelopes
from payerbridge.backends.x12_findings import (
    RECORD,
    Weight,
    element_weight,
    missing_in_record,
    reader_weight,
    segment_weight,
)
from payerbridge.backends.x12_layout import Layout, LayoutError, NormalizedText
from payerbridge.backends.x12_loops import LOOPS, composites
from payerbridge.backends.x12_records import (
    KINDS,
    Frame,
    Kind,
    claim_id_of,
    kind_of,
    not_read_text,
    record_data,
    record_key,
    segment_json,
    subscriber_of,
)
from payerbridge.backends.x12_texts import element_text, walk_text
from payerbridge.backends.x12_validation import SegmentValidation

__all__ = ["MAPS", "kind_of", "read_x12"]

logger = logging.getLogger(__name__)

Records = Iterator[SourceRecord | RecordProblem]

# GS08 -> the pyx12 map it is validated with. The errata versions are read with the map
# of the version they amend (pyx12's index names only X222A1 and X223A2): their changes
# are small (code lists and situational notes), so an element those errata added or
# allowed may be refused, and one they forbade accepted.
MAPS = {
    "005010X220A1": "834.5010.X220.A1.xml",
    "005010X222A1": "837.5010.X222.A1.xml",
    "005010X222A2": "837.5010.X222.A1.xml",
    "005010X223A1": "837Q3.I.5010.X223.A1.xml",
    "005010X223A2": "837Q3.I.5010.X223.A1.xml",
    "005010X223A3": "837Q3.I.5010.X223.A1.xml",
}
_ERRATA = frozenset(["005010X222A2", "005010X223A1", "005010X223A3"])
_PSEUDO_LOOPS = frozenset(["ISA_LOOP", "GS_LOOP", "ST_LOOP", "HEADER", "DETAIL", "FOOTER"])
_ENVELOPE = frozenset(["ISA", "IEA", "GS", "GE", "ST", "SE"])
_SPOOL_BYTES = 16 * 1024 * 1024
_MAX_WARNINGS = 50  # kept per loop; a record with more says how many more


@lru_cache(maxsize=8)
def _map(name: str) -> Any:
    """A pyx12 map, loaded once (maps are read, never changed, by validation)."""
    return pyx12.map_if.load_map_file(name, pyx12.params.ParamsBase())


def read_x12(stream: BinaryIO, name: str, options: dict[str, Any]) -> Records:
    """The records of an X12 file, and the problems of what cannot be read."""
    seekable = _seekable(stream)
    start = seekable.tell()
    try:
        try:
            with _normalized(seekable) as text:
                if text.version not in ("00401", "00501"):
                    # pyx12 reads no other version; 4010 is named at its groups (GS08).
                    where = Location(name, segment=1, segment_id="ISA")
                    version = re.sub(r"[^A-Za-z0-9]", "", text.version)
                    reason = f"version {version} (ISA12) is not read; 5010 only"
                    yield RecordProblem(where, reason, "not-supported")
                    return
                faults = check_envelopes(text, name)
                layout = text.layout
        except LayoutError as exc:
            where = Location(name, segment=1, segment_id="ISA")
            yield RecordProblem(where, f"not an X12 interchange: {exc.reason}", "structure")
            return
        seekable.seek(start)
        with _normalized(seekable) as text:
            yield from _Reader(name, options, faults).read(text, layout)
    finally:
        if seekable is not stream:
            seekable.close()


def _seekable(stream: BinaryIO) -> BinaryIO:
    try:
        if stream.seekable():
            return stream
    except (AttributeError, ValueError):
        pass
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
    while chunk := stream.read(1 << 16):
        spool.write(chunk)
    spool.seek(0)
    return spool  # type: ignore[return-value]


@contextmanager
def _normalized(stream: BinaryIO) -> Iterator[NormalizedText]:
    """The stream's segments as pyx12 reads them (``x12_layout``)."""
    # latin-1 reads every byte: a character X12 does not allow is pyx12's to refuse.
    text = io.TextIOWrapper(stream, encoding="latin-1", newline="")
    try:
        yield NormalizedText(text)
    finally:
        text.detach()


class _Reader:
    """One pass over the segments, building and giving records as their loops close."""

    def __init__(self, name: str, options: dict[str, Any], faults: EnvelopeFaults) -> None:
        self.name = name
        self.faults = faults
        self.kinds = frozenset(str(k) for k in options.get("kinds", KINDS))
        parameters = options.get("parameters", {})
        self.parameters = dict(parameters) if isinstance(parameters, dict) else {}
        self.control = _map("x12.control.00501.xml")
        self.walker = walk_tree()
        self.walker.counter = PathCounts()  # NodeCounter's counts, by path text
        self.node: Any = None
        self.map: Any = None  # the transaction's pyx12 map; None: envelope only
        self.kind: Kind | None = None
        self.implementation = ""
        self.isa: dict[str, Any] = {}
        self.gs: dict[str, Any] = {}
        self.stack: list[Frame] = []
        self.skipping: str | None = None  # the envelope level being skipped
        self.last_subscriber = ("", 0)  # 834: a family's run of INS loops
        self._composites: dict[int, frozenset[int]] = {}
        self._loops: dict[int, tuple[str, ...]] = {}
        self._position = 0
        self.validation = SegmentValidation()  # pyx12's, once per distinct segment
        self.version = ""  # ISA12
        self.component = ""  # ISA16
        # The envelope warnings (counts, control numbers) of the open ISA, GS and ST:
        # every record under them carries them.
        self.notes: dict[str, list[RecordProblem]] = {"isa": [], "gs": [], "st": []}

    def read(self, text: NormalizedText, layout: Layout) -> Records:
        if self.faults.unreadable is not None:
            yield self.faults.unreadable
            return
        for note in layout.notes():
            # The file's layout: said at its first segment (its ISA).
            where = Location(self.name, segment=1, segment_id="ISA")
            yield RecordProblem(where, note, "structure", severity="warning", kind="layout")
        src = pyx12.x12file.X12Reader(text)
        segments = iter(src)
        while True:
            try:
                segment = next(segments)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - pyx12 raises many kinds
                position = src.get_cur_line() + 1
                yield self._problem(
                    position, "", f"pyx12 cannot read on from here ({type(exc).__name__})"
                )
                break
            position = src.get_cur_line()
            if self.faults.stop_at is not None and position >= self.faults.stop_at:
                yield from self.faults.refused.get(self.faults.stop_at, [])
                break
            if segment.get_seg_id() in ("ISA", "IEA", "GE"):
                src.pop_errors()  # envelope errors: the first pass has them
            try:
                yield from self._segment(segment, position, src)
            except (pyx12.errors.EngineError, pyx12.errors.X12Error, LookupError, TypeError) as exc:
                yield from self._broken(position, segment.get_seg_id() or "", exc)
        yield from self._end_transaction()

    # -- envelopes ---------------------------------------------------------------

    def _segment(self, segment: Any, position: int, src: Any) -> Records:
        sid = segment.get_seg_id() or ""
        self._position = position
        if self.skipping is not None:
            if not self._skip_ends(sid):
                src.pop_errors()
                return
            closing = {"ST": "SE", "GS": "GE", "ISA": "IEA"}[self.skipping]
            self.skipping = None
            if sid == closing:
                src.pop_errors()
                return
        refused = self.faults.refused.get(position)
        if refused:
            yield from refused
            self.skipping = sid
            yield from self._end_transaction()
            return
        if sid == "ISA":
            yield from self._isa(segment, position)
        elif sid == "GS":
            yield from self._gs(segment, position, src)
        elif sid == "ST":
            yield from self._st(segment, position, src)
        elif sid in ("GE", "IEA"):
            yield from self._end_transaction()
        elif not self.stack:
            src.pop_errors()
            yield self._problem(position, sid, f"segment {sid} is outside a transaction set")
        else:
            yield from self._body(segment, position, src)

    def _skip_ends(self, sid: str) -> bool:
        ends = {
            "ST": ("SE", "ST", "GE", "GS", "IEA", "ISA"),
            "GS": ("GE", "GS", "IEA", "ISA"),
            "ISA": ("IEA", "ISA"),
        }
        return sid in ends[self.skipping or "ISA"]

    def _envelope_notes(self, level: str, position: int) -> Records:
        """The warnings of the envelope opened at ``position`` (and none of the levels
        under it yet): given once, and carried by each record under it."""
        levels = ("isa", "gs", "st")
        for under in levels[levels.index(level) :]:
            self.notes[under] = []
        self.notes[level] = list(self.faults.warnings.get(position, []))
        yield from self.notes[level]

    def _isa(self, segment: Any, position: int) -> Records:
        yield from self._envelope_notes("isa", position)
        self.node = self.control.getnodebypath("/ISA_LOOP/ISA")
        self.walker.forceWalkCounterToLoopStart("/ISA_LOOP", "/ISA_LOOP/ISA")
        self.isa = segment_json(_elements(segment, None, frozenset()), "ISA")
        self.version = str(self.isa.get("ISA12", ""))
        self.component = str(self.isa.get("ISA16", ""))
        if self.version != "00501":
            return  # named at its functional groups (GS08), which say more
        errors = [e for e in self.node.is_valid_errors(segment)[1]]
        if errors:
            for error in errors:
                yield self._problem(position, "ISA", element_text(error), "value")
            yield self._problem(position, "ISA", "the interchange is refused: its ISA is invalid")
            self.skipping = "ISA"

    def _gs(self, segment: Any, position: int, src: Any) -> Records:
        src.pop_errors()
        yield from self._envelope_notes("gs", position)
        gs01, gs08 = segment.get_value("GS01") or "", segment.get_value("GS08") or ""
        kind = kind_of(gs01, None, gs08)
        self.implementation = gs08
        unread = not_read_text(gs01, gs08, self.version, self.kinds)
        if unread is not None:
            yield self._problem(position, "GS", unread, "not-supported")
            self.skipping = "GS"
            return
        assert kind is not None
        self.kind = KINDS[kind]
        map_file = MAPS.get(gs08)
        self.map = _map(map_file) if map_file else None
        root = self.map if self.map is not None else self.control
        self.node = root.getnodebypath("/ISA_LOOP/GS_LOOP/GS")
        src.check_837_lx = kind.startswith("837")
        self.walker.forceWalkCounterToLoopStart("/ISA_LOOP/GS_LOOP", "/ISA_LOOP/GS_LOOP/GS")
        self.gs = segment_json(_elements(segment, None, frozenset()), "GS")
        errors = [e for e in self.node.is_valid_errors(segment)[1] if not self._errata(e)]
        if errors:
            for error in errors:
                yield self._problem(position, "GS", element_text(error), "value")
            yield self._problem(
                position, "GS", "the functional group is refused: its GS is invalid"
            )
            self.skipping = "GS"

    def _errata(self, error: Any) -> bool:
        """A version code the map's code list lacks: an errata version read with the map
        of the version it amends, or a version pyx12 has no map for (control map only)."""
        return (
            (self.implementation in _ERRATA or self.map is None)
            and error.err_cde == "7"
            and error.refdes in ("GS08", "ST03")
        )

    def _st(self, segment: Any, position: int, src: Any) -> Records:
        yield from self._end_transaction()
        src.pop_errors()
        yield from self._envelope_notes("st", position)
        if self.kind is None:
            yield self._problem(
                position, "ST", "the transaction set is not inside a functional group"
            )
            self.skipping = "ST"
            return
        st01 = segment.get_value("ST01") or ""
        if kind_of(str(self.gs.get("GS01", "")), st01, self.implementation) != self.kind.name:
            yield self._problem(
                position,
                "ST",
                f"ST01 {st01[:3]} is not the transaction its GS08 names",
                "structure",
            )
            self.skipping = "ST"
            return
        problems = []
        if self.map is not None:
            node, _, _, walk_errors = self.walker.walk_errors(
                self.node, segment, src.get_seg_count(), position, src.get_ls_id()
            )
            self.node = node or self.node
            problems = [walk_text(e, "ST") for e in walk_errors]
            problems += [
                element_text(e)
                for e in self.node.is_valid_errors(segment)[1]
                if not self._errata(e)
            ]
        src.pop_errors()
        if problems:
            for text in problems:
                yield self._problem(position, "ST", text, "structure")
            self.skipping = "ST"
            return
        root: dict[str, Any] = {
            "kind": self.kind.name,
            "implementation": self.implementation,
            "validation": "envelope" if self.map is None else str(MAPS[self.implementation]),
            "parameters": self.parameters,
            "ISA": [self.isa],
            "GS": [self.gs],
        }
        frame = Frame("", root, position, "ST", chain=False)
        frame.add_segment(
            "ST", segment_json(_elements(segment, self._node_or_none(), frozenset()), "ST")
        )
        self.stack = [frame]
        self.last_subscriber = ("", 0)

    def _node_or_none(self) -> Any:
        return self.node if self.map is not None else None

    def _close_to(self, depth: int) -> Records:
        """Close the open loops above the first ``depth`` frames, giving records."""
        while len(self.stack) > depth:
            yield from self._pop()

    def _end_transaction(self) -> Records:
        yield from self._close_to(0)

    # -- the body of a transaction set --------------------------------------------

    def _body(self, segment: Any, position: int, src: Any) -> Records:
        assert self.kind is not None
        sid = segment.get_seg_id() or ""
        if self.map is not None:
            node, _, _, walk_errors = self.walker.walk_errors(
                self.node, segment, src.get_seg_count(), position, src.get_ls_id()
            )
            owner = self._owner()
            for error in walk_errors:
                weight = segment_weight(str(error.err_cde), str(error.err_str))
                text = walk_text(error, sid)
                if node is None and str(error.err_cde) == "1":
                    text += "; it is not read"
                yield from self._fault(owner, position, sid, text, weight)
            if node is None:
                return
            self.node = node
            yield from self._place_mapped(node)
        else:
            yield from self._place_table(segment, position)
        top = self.stack[-1]
        top.add_segment(
            sid,
            segment_json(_elements(segment, self._node_or_none(), composites(self.kind.name)), sid),
        )
        owner = self._owner()
        for error in src.pop_errors():
            if error[0] in ("isa", "gs", "st"):
                continue  # envelope errors: the first pass has them
            weight = reader_weight(str(error[1]))
            yield from self._fault(owner, position, sid, _reader_text(error), weight)
        if self.map is not None and sid not in _ENVELOPE:
            for error in self.validation.errors(self.node, segment):
                code, ref = str(error.err_cde), str(error.refdes or "")
                weight = element_weight(self.kind.name, code, ref, segment)
                text = element_text(error, self.component)
                yield from self._fault(owner, position, sid, text, weight)
        if sid == "SE":
            yield from self._end_transaction()

    def _place_mapped(self, node: Any) -> Records:
        """Open and close loops so that the stack matches the map node's loops."""
        loops = self._loop_path(node)
        current = [f.loop for f in self.stack[1:]]
        keep = 0
        while keep < min(len(loops), len(current)) and loops[keep] == current[keep]:
            keep += 1
        if keep == len(loops) and loops and node.is_first_seg_in_loop():
            keep -= 1
        yield from self._close_to(keep + 1)
        for loop in loops[keep:]:
            self._push(loop, node.id)

    def _loop_path(self, node: Any) -> tuple[str, ...]:
        found = self._loops.get(id(node))
        if found is None:
            parts = node.get_path().split("/")[1:-1]
            found = tuple(p for p in parts if p not in _PSEUDO_LOOPS)
            self._loops[id(node)] = found
        return found

    def _place_table(self, segment: Any, position: int) -> Records:
        """Without a map: HL by its level and parent, other loops by the kind's table."""
        assert self.kind is not None
        table = LOOPS[self.kind.name]
        sid = segment.get_seg_id() or ""
        if sid in ("SE", "BHT"):
            yield from self._close_to(1)
            return
        if sid == "HL":
            parent = segment.get_value("HL02") or ""
            level = segment.get_value("HL03") or ""
            depth = 1
            for index, frame in enumerate(self.stack):
                if parent and frame.hl == parent:
                    depth = index + 1
            yield from self._close_to(depth)
            loop = table.hl_levels.get(level)
            if loop is None:
                text = f"HL03 level code {level[:3]} is not one the {self.kind.name} TR3 defines"
                weight = Weight(RECORD, "hierarchy", "value")
                yield from self._fault(self._owner(), position, sid, text, weight)
                loop = "HL"
            self._push(loop, sid).hl = segment.get_value("HL01") or ""
            return
        first = segment.get_value("01") or ""
        for index in range(len(self.stack) - 1, -1, -1):
            loop = table.child_loop(self.stack[index].loop, sid, first)
            if loop is not None:
                yield from self._close_to(index + 1)
                self._push(loop, sid)
                return

    def _push(self, loop: str, segment_id: str) -> Frame:
        assert self.kind is not None
        parent = self.stack[-1]
        chain = loop in self.kind.chain
        frame = Frame(loop, {"loop": loop}, 0, segment_id, chain)
        frame.position = self._position
        if chain:
            parent.child = frame
        else:
            parent.obj.setdefault(loop, []).append(frame.obj)
        self.stack.append(frame)
        return frame

    def _pop(self) -> Records:
        assert self.kind is not None
        frame = self.stack[-1]
        if frame.loop == self.kind.record_loop and frame.chain:
            yield from self._give(frame)
        self.stack.pop()
        if self.stack:
            self.stack[-1].child = None

    def _give(self, frame: Frame) -> Records:
        """The record of the loop that closes, or why it is quarantined (the first
        reason carries the record as read, for the quarantine)."""
        assert self.kind is not None
        kind = self.kind
        subscriber = subscriber_of(kind.name, frame.obj)
        last, count = self.last_subscriber
        ordinal = count + 1 if subscriber and subscriber == last else 1
        self.last_subscriber = (subscriber, ordinal)
        key = record_key(kind.name, self.stack, ordinal)
        where = Location(self.name, segment=frame.position, segment_id=frame.segment_id)
        data = record_data(self.stack)
        reasons = [
            (Location(self.name, segment=position, segment_id=sid), text, code)
            for position, sid, text, code in frame.problems
        ]
        faulty = next((f for f in self.stack[:-1] if f.faulty_at is not None), None)
        if faulty is not None:
            what = f"loop {faulty.loop}" if faulty.loop else "the transaction set's header"
            text = f"{kind.noun} refused: {what} has errors (segment {faulty.faulty_at})"
            reasons.append((where, text, "structure"))
        if kind.name.startswith("837") and not claim_id_of(frame.obj).strip():
            # pyx12 takes an element of spaces for a value; a claim with no id cannot be
            # told from another, nor kept under one (its key is the billing NPI and CLM01).
            text = f"{kind.noun} refused: its CLM01 (the claim's identifier) is blank"
            reasons.append((where, text, "value"))
        missing = missing_in_record(kind.name, data) if not reasons else None
        if missing is not None:
            reasons.append((where, f"{kind.noun} refused: {missing}", "required"))
        own = [replace(w, key=key) for w in frame.warnings]
        if frame.more_warnings:
            text = f"{frame.more_warnings} more warning(s) in this {kind.noun}, not listed"
            own.append(
                RecordProblem(where, text, "structure", key, severity="warning", kind="truncated")
            )
        yield from own  # said even of a refused record: often they say why
        if reasons:
            for index, (location, text, code) in enumerate(reasons):
                held = data if index == 0 else None
                yield RecordProblem(location, text, code, key, record=held)
            return
        carried = [w for level in self.notes.values() for w in level]
        carried += [w for f in self.stack[:-1] for w in f.warnings]
        yield SourceRecord(kind.name, key, data, where, tuple(carried + own))

    def _owner(self) -> Frame:
        for frame in reversed(self.stack):
            if frame.chain:
                return frame
        return self.stack[0]

    def _fault(self, owner: Frame, position: int, sid: str, text: str, weight: Weight) -> Records:
        """A finding in ``owner``'s loop: one that quarantines refuses its record (in a
        context loop, every record under it); a warning is kept with the loop and, in
        a context loop, given at once (its records carry it)."""
        assert self.kind is not None
        code = weight.code
        is_record = owner.chain and owner.loop == self.kind.record_loop
        if weight.quarantines:
            if is_record:
                owner.problems.append((position, sid, text, code))
                return
            if owner.faulty_at is None:
                owner.faulty_at = position
            yield self._problem(position, sid, text, code)
            return
        where = Location(self.name, segment=position, segment_id=sid or None)
        warning = RecordProblem(where, text, code, severity="warning", kind=weight.kind)
        if len(owner.warnings) < _MAX_WARNINGS:
            owner.warnings.append(warning)
        elif is_record:
            owner.more_warnings += 1
        if not is_record:
            yield warning

    def _broken(self, position: int, sid: str, exc: Exception) -> Records:
        """pyx12 failed on a segment: the rest of its transaction set is not read."""
        logger.warning("x12: pyx12 failed at segment %s (%s)", position, type(exc).__name__)
        text = (
            f"pyx12 could not place segment {sid[:3]} ({type(exc).__name__}); the rest of "
            "this transaction set is refused"
        )
        for frame in self.stack:
            if frame.chain and self.kind is not None and frame.loop == self.kind.record_loop:
                frame.problems.append((position, sid[:3], text, "structure"))
        if self.stack:
            self.stack[0].faulty_at = self.stack[0].faulty_at or position
            yield from self._end_transaction()
        yield self._problem(position, sid[:3], text)
        self.skipping = "ST"
        if self.map is not None:
            self.node = self.map.getnodebypath("/ISA_LOOP/GS_LOOP/GS")

    def _problem(
        self, position: int, sid: str, text: str, code: str = "structure"
    ) -> RecordProblem:
        return RecordProblem(
            Location(self.name, segment=position, segment_id=sid or None), text, code
        )


def _elements(segment: Any, node: Any, known: frozenset[str]) -> Iterator[tuple[list[str], bool]]:
    sid = segment.get_seg_id() or ""
    for index, element in enumerate(segment.elements, 1):
        values = [e.get_value() for e in element.elements]
        composite = f"{sid}{index:02d}" in known or _is_composite(node, index)
        yield values, composite


def _is_composite(node: Any, index: int) -> bool:
    if node is None:
        return False
    child = node.get_child_node_by_idx(index - 1)
    return bool(child is not None and child.is_composite())


def _reader_text(error: tuple[str, str, str, Any, Any]) -> str:
    kind, code, text = error[0], error[1], error[2]
    known = {
        "HL1": "HL01 does not continue the HL numbering",
        "HL2": "HL02 names no open parent HL",
        "LX": "LX01 does not continue the service line numbering of its claim",
        "SEG1": "the segment ends with an element separator",
        "8": "the segment is empty",
    }
    if code in known:
        return known[code]
    if code == "1" and "leading space" in text:
        return "the segment begins with a space"
    if code == "1":
        return "the segment identifier is not valid"
    return f"{kind} error {re.sub(r'[^A-Za-z0-9]', '', code)[:4]}"
