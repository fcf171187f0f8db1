"""The NCPDP Telecommunication D.0 reader: transmissions in, one record per transaction
out, streamed, and every transmission or transaction that cannot be read named by its
line without repeating a value."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payerbridge.backends import ncpdp
from payerbridge.backends.model import RecordProblem, SourceRecord
from payerbridge.backends.readers import READERS, read_stream
from tests.unit.backends.ncpdp_files import (
    FIELD,
    GROUP,
    SEGMENT,
    a_fill,
    claim,
    header,
    insurance,
    patient,
    prescriber,
    segment,
    transmission,
)

Item = SourceRecord | RecordProblem


def read(body: str | bytes, **options: Any) -> list[Item]:
    data = body.encode() if isinstance(body, str) else body
    return list(read_stream("ncpdp", io.BytesIO(data), "claims.d0", options))


def test_the_reader_is_registered_with_the_source_readers() -> None:
    assert "ncpdp" in READERS


def test_a_transmission_gives_one_record_per_transaction_with_its_segments() -> None:
    body = transmission(
        a_fill("RX1", "00071015523"),
        claim("RX2", "61958070101", fill="3", extra=(("DK", "07"), ("DK", "08"))),
        date_of_service="20260112",
    )
    first, second = read(body + "\n", parameters={"member_id_system": "urn:x"})
    assert isinstance(first, SourceRecord) and isinstance(second, SourceRecord)
    assert first.kind == "B1"
    assert first.key == "1234567893|RX1|0|20260112"
    assert second.key == "1234567893|RX2|3|20260112"
    data = first.data
    assert data["header"]["A2"] == "D0" and data["header"]["D1"] == "20260112"
    assert data["header"]["B1"] == "1234567893"  # padded to 15 in the header: stripped
    assert data["insurance"]["C2"] == "M0000001" and data["patient"]["CA"] == "PAT"
    assert data["claim"]["D7"] == "00071015523" and data["claim"]["E1"] == "03"
    assert data["prescriber"]["DB"] == "1245319599"
    assert "pricing" in data  # read like the rest; a non-financial mapping reads none of it
    assert data["transmission"] == {"count": 2, "index": 1}
    assert data["parameters"] == {"member_id_system": "urn:x"}
    # The second transaction shares the transmission's patient and insurance segments,
    # and has no prescriber of its own; a repeated field is a list.
    assert second.data["insurance"] == data["insurance"]
    assert "prescriber" not in second.data
    assert second.data["claim"]["DK"] == ["07", "08"]
    assert first.location.line == second.location.line == 1


def test_a_single_transaction_without_its_group_separator_is_read() -> None:
    body = header() + patient() + insurance() + a_fill("RX1", "00071015523")
    (record,) = read(body)
    assert isinstance(record, SourceRecord) and record.data["claim"]["D2"] == "RX1"


def test_lines_and_batch_framing() -> None:
    one = transmission(a_fill("RX1", "00071015523"))
    two = transmission(a_fill("RX2", "00071015523"))
    lines = read(f"{one}\r\n\r\n{two}")
    assert [(i.key, i.location.line) for i in lines] == [
        ("1234567893|RX1|0|20260105", 1),
        ("1234567893|RX2|0|20260105", 3),
    ]
    batch_header = "\x0200T" + "SENDER".ljust(24) + "0000001" + "20260131" + "1200" + "T12\x03"
    batch = (
        batch_header
        + f"\x02G1{'0000000001'}{one}\x03\n"
        + f"\x02G1{'0000000002'}{two}\x03"
        + "\x0299"
        + "0000001"
        + "0000000002"
        + " " * 35
        + "\x03"
    )
    framed = read(batch)
    # Each batch record counts as a line: the header is 1, the trailer 4.
    assert [(i.key, i.location.line) for i in framed if isinstance(i, SourceRecord)] == [
        ("1234567893|RX1|0|20260105", 2),
        ("1234567893|RX2|0|20260105", 3),
    ]
    assert not [i for i in framed if isinstance(i, RecordProblem)]


def test_a_large_file_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    """Records come while the file is still being read, chunk by chunk: a transmission
    cut by a chunk's end is joined with the next."""
    monkeypatch.setattr(ncpdp, "_CHUNK", 97)  # a chunk ends inside every transmission
    lines = [transmission(a_fill(f"RX{n}", "00071015523")) for n in range(2000)]
    stream = io.BytesIO("\n".join(lines).encode())
    items = ncpdp.read_ncpdp(stream, "big.d0", {})
    first = next(items)
    assert isinstance(first, SourceRecord) and first.data["claim"]["D2"] == "RX0"
    assert stream.tell() < 1000  # only what the first record needed was read
    rest = list(items)
    assert len(rest) == 1999 and all(isinstance(i, SourceRecord) for i in rest)
    assert rest[-1].data["claim"]["D2"] == "RX1999" and rest[-1].location.line == 2000


UNREADABLE = [
    (header(version="51") + insurance(), "102-A2 is not D0"),
    (transmission(a_fill("RX1", "1"), transaction="B2"), "transaction code B2"),
    (header()[:40], "header is not 56 characters"),
    (header(count=2) + insurance() + GROUP + a_fill("RX1", "1"), "transaction count (109-A9)"),
    (header() + "X" + insurance() + GROUP + a_fill("RX1", "1"), "outside any segment"),
    (header() + insurance() + GROUP + SEGMENT + FIELD + "AM99" + FIELD + "D21", "AM99"),
    (header() + insurance() + GROUP + SEGMENT + FIELD + "D2RX1", "segment id (111-AM)"),
    (header() + insurance() + insurance() + GROUP + a_fill("RX1", "1"), "AM04 appears twice"),
    (header() + insurance() + GROUP + insurance() + a_fill("RX1", "1"), "inside a transaction"),
    (header() + insurance() + claim("RX1", "1") + GROUP + prescriber(), "before the first"),
    (header() + insurance() + GROUP + segment("07", ("D", "")), "without its identifier"),
]


@pytest.mark.parametrize(("body", "expected"), UNREADABLE, ids=[e for _, e in UNREADABLE])
def test_a_transmission_that_cannot_be_read_is_refused_whole(body: str, expected: str) -> None:
    (problem,) = read(body)
    assert isinstance(problem, RecordProblem), problem
    assert expected in problem.text and problem.code == "structure"
    assert problem.location.line == 1


def test_a_transaction_without_a_claim_or_its_number_is_refused_alone() -> None:
    body = transmission(prescriber(), a_fill("", "00071015523"), a_fill("RX3", "00071015523"))
    no_claim, no_number, mapped = read(body)
    assert isinstance(no_claim, RecordProblem) and "no claim segment (AM07)" in no_claim.text
    assert isinstance(no_number, RecordProblem) and "402-D2" in no_number.text
    assert no_number.code == "required"
    assert isinstance(mapped, SourceRecord) and mapped.data["transmission"]["index"] == 3


def test_text_that_is_not_the_encoding_is_a_problem_of_its_line() -> None:
    good = transmission(a_fill("RX1", "00071015523")).encode()
    items = read(b"\xff\xfe" + good + b"\n" + good)
    assert isinstance(items[0], RecordProblem) and items[0].location.line == 1
    assert isinstance(items[1], SourceRecord)


MARKER = "ZQXJ4711"


@given(st.sampled_from(["C2", "CA", "D2", "D7", "B1", "A2", "A3", "A9", "AM"]))
@settings(max_examples=20, deadline=None)
def test_a_problem_never_repeats_a_value(where: str) -> None:
    """Whatever field holds it (a member id, a name, a code), a value is never in a
    problem's text."""
    body = transmission(a_fill("RX1", "00071015523"))
    if where in ("B1", "A2", "A3", "A9"):
        at = {"A2": 6, "A3": 8, "A9": 20, "B1": 23}[where]
        body = body[:at] + MARKER[:2] + body[at + 2 :]
    elif where == "AM":
        body = body.replace(FIELD + "AM07", FIELD + "AM" + MARKER)
    else:
        body = body.replace(FIELD + where, FIELD + where + MARKER, 1)
        body = body.replace(GROUP, GROUP + MARKER, 1)  # and make the transmission fail
    for item in read(body):
        if isinstance(item, RecordProblem):
            assert MARKER not in item.text and MARKER[:2] not in item.text.split(), item.text
