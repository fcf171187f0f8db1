"""NCPDP Telecommunication Standard D.0 claim billing requests read into records, one per
transaction (pure: bytes in, records out, streamed).

A D.0 transmission is a fixed 56-character transaction header (101-A1 BIN, 102-A2
version ``D0``, 103-A3 transaction code, 104-A4 PCN, 109-A9 transaction count, 202-B2 and
201-B1 the service provider's id qualifier and id, 401-D1 date of service, 110-AK
software vendor) and then segments. Each segment begins with the segment separator
(0x1E) and is a run of fields, each introduced by the field separator (0x1C) and named by
its two-character field identifier (``C2`` the cardholder id, ``D7`` the product id);
the first, 111-AM, says which segment it is (``AM07`` the claim). The patient (01) and
insurance (04) segments speak for the whole transmission; each of its one to four
transactions follows a group separator (0x1D) with its own claim (07), pharmacy
provider (02), prescriber (03), DUR/PPS (08), compound (10), pricing (11)... segments.

A file holds transmissions one per line (``\\n`` or ``\\r\\n``), or framed as NCPDP Batch
1.2 records (STX 0x02 ... ETX 0x03: the ``00`` header and ``99`` trailer are passed
over, a ``G1`` detail record's 10-character reference is dropped). It is read in chunks:
a file of any size reads in the same memory.

A record's ``data``::

    {"transaction": "B1", "header": {"A1": ..., "B1": ..., "D1": ...},
     "patient": {"CA": ..., "C4": ...}, "insurance": {"C2": ..., "C6": ...},
     "claim": {"D2": ..., "E1": "03", "D7": ...}, "prescriber": {...}, ...,
     "transmission": {"count": 2, "index": 1}, "parameters": {...}}

Segments are named as the standard names them (``pharmacy_provider``, ``dur_pps``,
``pricing``...); fields by their identifiers, each value a string with its padding taken
off, or a list of strings when the field repeats in the segment (``DK``, a compound's
ingredients). Nothing is interpreted: implied decimals (442-E7 quantity, 9(7)v999) and
codes are the mapping's to read. Pricing and other payment segments are read like the
rest; the mappings decide what leaves (a non-financial one reads none of them).

What refuses what (a problem's text names the line, the segment and field identifiers,
never a value: they are a member's):

- a header that is short or not D.0, a transaction code the mapping does not read
  (option ``kinds``, default ``["B1"]``), a segment that cannot be read (no segment
  id, a field id cut short, an unknown segment, one at the wrong level), a transaction
  count that is not the number of groups: the transmission;
- a transaction without its claim segment or its prescription number (402-D2): that
  transaction.

Options (a mapping's ``input_options``): ``kinds`` and ``parameters`` (a table copied into
every record's ``parameters``, as the X12 reader does), ``encoding`` (default utf-8;
D.0 is ASCII).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from payerbridge.backends.model import Location, RecordProblem, SourceRecord

__all__ = ["HEADER_FIELDS", "SEGMENTS", "read_ncpdp", "read_transmission"]

Records = Iterator[SourceRecord | RecordProblem]

SEGMENT_SEPARATOR = "\x1e"
GROUP_SEPARATOR = "\x1d"
FIELD_SEPARATOR = "\x1c"
# The transaction header: each field's identifier and width, in order (56 characters).
HEADER_FIELDS = (
    ("A1", 6),
    ("A2", 2),
    ("A3", 2),
    ("A4", 10),
    ("A9", 1),
    ("B2", 2),
    ("B1", 15),
    ("D1", 8),
    ("AK", 10),
)
HEADER_LENGTH = sum(width for _, width in HEADER_FIELDS)
# 111-AM segment identification: the request segments of D.0.
SEGMENTS = {
    "01": "patient",
    "02": "pharmacy_provider",
    "03": "prescriber",
    "04": "insurance",
    "05": "coordination_of_benefits",
    "06": "workers_compensation",
    "07": "claim",
    "08": "dur_pps",
    "09": "coupon",
    "10": "compound",
    "11": "pricing",
    "12": "prior_authorization",
    "13": "clinical",
    "14": "additional_documentation",
    "15": "facility",
    "16": "narrative",
}
# The segments that speak for the whole transmission (before the first group).
_TRANSMISSION_LEVEL = frozenset({"patient", "insurance"})
# 103-A3's codes (named in a problem; anything else is not repeated).
_TRANSACTION_CODES = frozenset(
    ["E1", "B1", "B2", "B3", "C1", "C2", "C3", "D1", "N1", "N2", "N3"]
    + ["P1", "P2", "P3", "P4", "S1", "S2", "S3"]
)
_CHUNK = 1 << 16


class _Unreadable(Exception):
    """A transmission that cannot be read; the text names where, never a value."""


def read_ncpdp(stream: BinaryIO, name: str, options: dict[str, Any]) -> Records:
    """The transactions of a file of D.0 transmissions, and the problems of those that
    cannot be read."""
    encoding = str(options.get("encoding", "utf-8"))
    for line, raw in _transmissions(stream):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            yield RecordProblem(
                Location(name, line), f"not {encoding} text ({exc.reason})", "structure"
            )
            continue
        yield from read_transmission(text, Location(name, line), options)


def read_transmission(text: str, where: Location, options: dict[str, Any]) -> Records:
    """The transactions of one D.0 transmission (its text, without framing)."""
    kinds = frozenset(str(k) for k in options.get("kinds", ["B1"]))
    parameters = options.get("parameters", {})
    try:
        header = _header(text, kinds)
        common, groups = _segments(text[HEADER_LENGTH:])
        count = int(header["A9"]) if header["A9"].isdigit() else 0
        if count != len(groups) or not 1 <= count <= 4:
            raise _Unreadable(
                f"the transaction count (109-A9) does not match the {len(groups)} "
                "transaction group(s) the transmission holds"
            )
    except _Unreadable as exc:
        yield RecordProblem(where, f"transmission refused: {exc}", "structure")
        return
    for index, segments in enumerate(groups, 1):
        claim = segments.get("claim") or {}
        number, fill = _text(claim.get("D2")), _text(claim.get("D3")) or "0"
        key = "|".join([header["B1"], number, fill, header["D1"]])
        what = f"transaction {index} of {count}"
        if not claim:
            yield RecordProblem(where, f"{what} refused: it has no claim segment (AM07)", key=key)
            continue
        if not number:
            text = f"{what} refused: its prescription number (402-D2) is missing"
            yield RecordProblem(where, text, "required", key=key)
            continue
        data: dict[str, Any] = {
            "transaction": header["A3"],
            "header": header,
            **common,
            **segments,
            "transmission": {"count": count, "index": index},
            "parameters": dict(parameters) if isinstance(parameters, dict) else {},
        }
        yield SourceRecord(header["A3"], key, data, where)


def _header(text: str, kinds: frozenset[str]) -> dict[str, str]:
    if len(text) < HEADER_LENGTH or SEGMENT_SEPARATOR in text[:HEADER_LENGTH]:
        raise _Unreadable(f"the transaction header is not {HEADER_LENGTH} characters long")
    header, at = {}, 0
    for field, width in HEADER_FIELDS:
        header[field] = text[at : at + width].strip()
        at += width
    if header["A2"] != "D0":
        raise _Unreadable("not NCPDP Telecommunication D.0 (102-A2 is not D0)")
    if header["A3"] not in kinds:
        known = ", ".join(sorted(kinds))
        code = header["A3"] if header["A3"] in _TRANSACTION_CODES else "?"
        raise _Unreadable(
            f"transaction code {code} (103-A3) is not one this mapping reads ({known})"
        )
    return header


def _segments(body: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The transmission-level segments and each transaction group's."""
    parts = body.split(GROUP_SEPARATOR)
    common = _group(parts[0], level="transmission")
    groups = [_group(part, level="transaction") for part in parts[1:]]
    if not groups and any(name not in _TRANSMISSION_LEVEL for name in common):
        # One transaction sent without its group separator: its segments follow.
        groups = [{k: v for k, v in common.items() if k not in _TRANSMISSION_LEVEL}]
        common = {k: v for k, v in common.items() if k in _TRANSMISSION_LEVEL}
    elif any(name not in _TRANSMISSION_LEVEL for name in common):
        raise _Unreadable("a transaction's segment comes before the first group separator")
    return common, groups


def _group(text: str, level: str) -> dict[str, Any]:
    pieces = text.split(SEGMENT_SEPARATOR)
    if pieces[0].strip():
        raise _Unreadable(f"characters outside any segment at the {level} level")
    segments: dict[str, Any] = {}
    for number, piece in enumerate(pieces[1:], 1):
        name, fields = _segment(piece, f"{level} segment {number}")
        if name in segments:
            raise _Unreadable(f"segment AM{_code(name)} appears twice at the {level} level")
        if level == "transaction" and name in _TRANSMISSION_LEVEL:
            raise _Unreadable(f"segment AM{_code(name)} sits inside a transaction group")
        segments[name] = fields
    return segments


def _segment(text: str, where: str) -> tuple[str, dict[str, Any]]:
    fields = text.split(FIELD_SEPARATOR)
    if fields[0].strip() or len(fields) < 2 or not fields[1].startswith("AM"):
        raise _Unreadable(f"{where} does not begin with its segment id (111-AM)")
    code = fields[1][2:].strip()
    name = SEGMENTS.get(code)
    if name is None:
        shown = code if code.isalnum() and len(code) <= 2 else "?"
        raise _Unreadable(f"{where} is AM{shown}, not a D.0 request segment")
    values: dict[str, Any] = {}
    for field in fields[2:]:
        if not field.strip():
            continue
        if len(field) < 2 or not field[:2].isalnum():
            raise _Unreadable(f"{where} (AM{code}) has a field without its identifier")
        identifier, value = field[:2], field[2:].strip()
        if identifier in values:
            before = values[identifier]
            values[identifier] = [*before, value] if isinstance(before, list) else [before, value]
        else:
            values[identifier] = value
    return name, values


def _code(name: str) -> str:
    return next(code for code, known in SEGMENTS.items() if known == name)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def _transmissions(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """Each transmission of the file with its line (or batch record) number, read in
    chunks; NCPDP Batch 1.2 framing taken off."""
    buffer = b""
    number = 0
    while True:
        chunk = stream.read(_CHUNK)
        buffer += chunk
        pieces = _split(buffer)
        buffer = b"" if not chunk else pieces.pop()
        for piece in pieces:
            number += 1
            transmission = _unframed(piece.strip(b"\r"))
            if transmission is not None:
                yield number, transmission
        if not chunk:
            return


def _split(buffer: bytes) -> list[bytes]:
    """Lines, a batch record's ETX ending one (with the line break after it, if any)."""
    for end in (b"\x03\r\n", b"\x03\n", b"\x03"):
        buffer = buffer.replace(end, b"\n")
    return buffer.split(b"\n")


def _unframed(piece: bytes) -> bytes | None:
    """The transmission a line or batch record holds; None for a blank line or a batch
    header (``00``) or trailer (``99``)."""
    if piece.startswith(b"\x02"):
        record = piece[1:]
        if record[:2] in (b"00", b"99"):
            return None
        if record[:2] == b"G1":
            return record[12:]
        return record
    return piece if piece.strip() else None
