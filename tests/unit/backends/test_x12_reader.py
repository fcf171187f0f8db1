# ruff: noqa: E501
"""The X12 reader on public samples no one here wrote, on corrupted copies of them, and
on a large generated 837 (memory)."""

from __future__ import annotations

import io
import re
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payerbridge.backends import x12_validation
from payerbridge.backends.model import RecordProblem, SourceRecord
from payerbridge.backends.x12 import read_x12
from tests.unit.backends.x12_files import GeneratedStream, claims_837

DATA = Path(__file__).resolve().parents[2] / "data" / "x12"
LFH = "LinuxForHealth-x12"

# file -> (records read, kind, records refused, the first error's segment position and text
# part, the warnings' kinds). Every file its suite calls valid and whose transaction set
# is read is accepted, its records counted against its INS / CLM segments; what the
# guide would refuse but does not change a record's meaning is a warning (ADR 0056).
NOT_READ = "not one this source reads"
SAMPLES: dict[str, tuple[int, str | None, int, int | None, str, set[str]]] = {
    f"{LFH}/271_005010X279A1/subscriber-health-benefit-check-error.271": (0, None, 0, 2, "is a 271 eligibility response (005010X279A1); this source reads", set()),
    f"{LFH}/834_005010X220A1/add-dependent.834": (1, "834", 0, None, "", set()),
    f"{LFH}/834_005010X220A1/change-subscriber-information.834": (1, "834", 0, None, "", set()),
    f"{LFH}/834_005010X220A1/enroll-employee-managed-care.834": (1, "834", 0, None, "", {"order"}),
    f"{LFH}/834_005010X220A1/enroll-employee-multiple-products.834": (1, "834", 0, None, "", set()),
    f"{LFH}/834_005010X220A1/terminate-subscriber-eligibility.834": (1, "834", 0, None, "", set()),
    f"{LFH}/835_005010X221A1/cob-contractural-adjustment.835": (0, None, 0, 2, "is an 835 remittance advice (005010X221A1); this source reads", set()),
    f"{LFH}/835_005010X221A1/managed-care.835": (0, None, 0, 2, "is an 835 remittance advice (005010X221A1)", set()),
    f"{LFH}/835_005010X221A1/medicare-part-a.835": (0, None, 0, 2, "is an 835 remittance advice (005010X221A1)", set()),
    f"{LFH}/835_005010X221A1/secondary-payment.835": (0, None, 0, 2, "is an 835 remittance advice (005010X221A1)", set()),
    f"{LFH}/837_005010X222A2/demo.ambulance.example5.837": (1, "837P", 0, None, "", {"missing-element"}),
    f"{LFH}/837_005010X222A2/demo.cob.example3.A.837": (1, "837P", 0, None, "", {"missing-segment"}),
    f"{LFH}/837_005010X222A2/demo.drug.example10.2.837": (1, "837P", 0, None, "", set()),
    f"{LFH}/837_005010X222A2/demo.example1.837": (1, "837P", 0, None, "", set()),
    f"{LFH}/837_005010X223A3/institutional-claim.837i": (1, "837I", 0, None, "", {"code", "not-used"}),
    f"{LFH}/837_005010X223A3/out-of-network-repriced-claim.837i": (1, "837I", 0, None, "", {"length", "missing-element", "missing-segment", "not-used", "order", "code"}),
    f"{LFH}/837_005010X223A3/two-claims-single-provider.837i": (2, "837I", 0, None, "", {"code", "not-used"}),
    "azoner-pyx12/examples/example834_5010.txt": (1, "834", 0, None, "", {"layout", "length", "character", "code"}),
    "azoner-pyx12/tests/834_deident_family.txt": (3, "834", 0, None, "", set()),
    "azoner-pyx12/tests/834_deident_new_enroll.txt": (1, "834", 0, None, "", set()),
    "azoner-pyx12/tests/834_deident_term.txt": (2, "834", 0, None, "", set()),
    "azoner-pyx12/tests/834_ls_le_ls.txt": (1, "834", 0, None, "", set()),
    "azoner-pyx12/tests/835_mult_loops.txt": (0, None, 0, 2, "is an 835 remittance advice (005010X221A1)", set()),
}  # fmt: skip
# The record segments each sample holds (834 INS, 837 CLM): what it must give.
_RECORD_SEGMENTS = {"834": b"INS", "837P": b"CLM", "837I": b"CLM"}


def _read(data: bytes, name: str = "f.x12") -> list[SourceRecord | RecordProblem]:
    return list(read_x12(io.BytesIO(data), name, {}))


def test_the_table_names_every_sample() -> None:
    found = {
        str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file() and p.name != "README.md"
    }
    assert found == set(SAMPLES)


def _segments_of(data: bytes, segment_id: bytes) -> int:
    """How many segments ``segment_id`` a plain sample holds (its terminator from ISA)."""
    terminator = data[105:106]
    return sum(1 for s in data.split(terminator) if s.strip().startswith(segment_id + b"*"))


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_a_public_sample_reads_or_is_refused_with_segment_and_reason(sample: str) -> None:
    read, kind, refused, position, reason, warned = SAMPLES[sample]
    data = (DATA / sample).read_bytes()
    items = _read(data, Path(sample).name)
    records = [i for i in items if isinstance(i, SourceRecord)]
    errors = [i for i in items if isinstance(i, RecordProblem) and not i.is_warning]
    warnings = [i for i in items if isinstance(i, RecordProblem) and i.is_warning]
    assert len(records) == read
    assert {r.kind for r in records} <= {kind}
    if kind is not None:
        assert read + refused == _segments_of(data, _RECORD_SEGMENTS[kind])
    assert len({p.key for p in errors if p.key is not None}) == refused
    if position is None:
        assert errors == []
    else:
        assert errors[0].location.segment == position
        assert reason in errors[0].text and errors[0].code == "not-supported"
    assert {w.kind for w in warnings} == warned
    for warning in warnings:
        assert warning.location.segment is not None and warning.location.segment >= 1
    for record in records:
        assert record.location.segment is not None and record.key


def test_a_claim_reads_as_its_loops_with_the_context_it_needs() -> None:
    (record,) = _read((DATA / LFH / "837_005010X222A2/demo.example1.837").read_bytes())
    assert isinstance(record, SourceRecord)
    claim = record.data["2000A"][0]["2000B"][0]["2000C"][0]["2300"][0]
    assert claim["CLM"][0]["CLM05"] == ["11", "B", "1"]
    assert [line["LX"][0]["LX01"] for line in claim["2400"]] == ["1", "2", "3", "4"]
    assert record.data["2000A"][0]["2010AA"][0]["NM1"][0]["NM101"] == "85"
    assert record.key == "1912301953|26463774" and record.location.segment == 27


def _generated(claims: int, per_transaction: int = 5000) -> bytes:
    return "".join(claims_837(claims, per_transaction)).encode()


def test_a_claim_whose_meaning_is_broken_is_refused_alone_with_its_record() -> None:
    """A service date that is no date: that claim is refused (with the record as read,
    for the quarantine), the others read."""
    data = _generated(3)
    second = data.index(b"CLM*C0000002")
    data = data[:second] + data[second:].replace(b"DTP*472*D8*20240110", b"DTP*472*D8*20241310", 1)
    items = _read(data)
    assert [i.key for i in items if isinstance(i, SourceRecord)] == [
        "1497758544|C0000001",
        "1497758544|C0000003",
    ]
    (problem,) = [i for i in items if isinstance(i, RecordProblem)]
    assert problem.key == "1497758544|C0000002" and problem.location.segment_id == "DTP"
    assert problem.record is not None and "20241310" not in problem.text


def test_a_code_the_guide_does_not_list_is_a_warning_the_claim_is_read() -> None:
    data = _generated(3).replace(b"CLM*C0000002*100***11:B:1", b"CLM*C0000002*100***1X:B:1")
    items = _read(data)
    records = [i for i in items if isinstance(i, SourceRecord)]
    assert [r.key for r in records] == [f"1497758544|C000000{n}" for n in (1, 2, 3)]
    (warning,) = [i for i in items if isinstance(i, RecordProblem)]
    assert warning.is_warning and warning.kind == "code"
    assert warning.key == "1497758544|C0000002" and warning.location.segment_id == "CLM"
    assert "1X" not in warning.text
    assert records[1].warnings == (warning,) and records[0].warnings == ()


def test_a_wrong_se_count_is_a_warning_and_its_claims_are_read() -> None:
    data = _generated(4, per_transaction=2)
    data = data.replace(b"SE*35*0001", b"SE*36*0001")
    items = _read(data)
    records = [i for i in items if isinstance(i, SourceRecord)]
    assert [r.key for r in records] == [f"1497758544|C000000{n}" for n in (1, 2, 3, 4)]
    (warning,) = [i for i in items if isinstance(i, RecordProblem)]
    assert warning.is_warning and warning.kind == "count" and "SE01" in warning.text
    assert warning.location.segment_id == "SE"
    # The set's records carry it (to their Provenance); the next set's do not.
    assert [len(r.warnings) for r in records] == [1, 1, 0, 0]


def test_a_cut_file_refuses_the_interchange_it_cuts() -> None:
    """An interchange without its IEA is refused whole: which of its sets are complete
    cannot be trusted (nothing half-written)."""
    data = _generated(4, per_transaction=2)
    items = _read(data[: data.index(b"CLM*C0000004")])
    assert not [i for i in items if isinstance(i, SourceRecord)]
    texts = [i.text for i in items if isinstance(i, RecordProblem)]
    assert any("no IEA trailer" in t for t in texts)


@pytest.mark.parametrize("dropped", [1, 2])
def test_a_missing_gs_or_st_is_said_not_silent(dropped: int) -> None:
    segments = _generated(2).split(b"~\n")
    del segments[dropped]
    items = _read(b"~\n".join(segments))
    assert items and all(isinstance(i, RecordProblem) for i in items)


def test_not_an_interchange_is_one_problem_at_segment_1() -> None:
    (problem,) = _read(b"NM1*IL*1*DOE~")
    assert isinstance(problem, RecordProblem) and problem.location.segment == 1


_VALID = _generated(6, per_transaction=3)
_SEGMENTS = _VALID.split(b"~\n")


def _identity(parts: list[bytes], at: int) -> bool:
    return (parts[0] == b"CLM" and at == 1) or (parts[:2] == [b"NM1", b"85"] and at == 9)


def _corrupt(data: st.DataObject) -> bytes:
    segments = list(_SEGMENTS)
    how = data.draw(
        st.sampled_from(["drop", "garbage", "se01", "trailer", "cut", "delimiters", "bytes"])
    )
    index = data.draw(st.integers(0, len(segments) - 2))
    if how == "drop":
        del segments[index]
    elif how == "garbage":
        parts = segments[index].split(b"*")
        # Not the claim's identity (CLM01, the billing provider's NM109): another value
        # there is another claim, read as such, not a corruption a reader can see.
        at = data.draw(st.integers(0, len(parts) - 1).filter(lambda at: not _identity(parts, at)))
        parts[at] = data.draw(st.binary(max_size=12))
        segments[index] = b"*".join(parts)
    elif how == "se01":
        segments = [s.replace(b"SE*", b"SE*9") for s in segments]
    elif how == "trailer":
        segments = [s for s in segments if not s.startswith(b"SE*")]
    elif how == "cut":
        return _VALID[: data.draw(st.integers(0, len(_VALID)))]
    elif how == "delimiters":
        segments[index] = segments[index].replace(
            b"*", data.draw(st.sampled_from([b"|", b":", b"~", b"^"]))
        )
    else:
        return data.draw(st.binary(max_size=400))
    return b"~\n".join(segments)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_corrupted_file_gives_problems_at_its_segments_never_an_exception(
    data: st.DataObject,
) -> None:
    corrupted = _corrupt(data)
    items = _read(corrupted)
    total = max(1, corrupted.count(b"~") + 1)
    good = {i.key for i in items if isinstance(i, SourceRecord)}
    assert items  # never silent: records, or problems saying why not
    for item in items:
        if isinstance(item, RecordProblem):
            assert item.location.segment is not None and 1 <= item.location.segment <= total
    # Whatever was read is one of the file's claims, unchanged in identity.
    assert good <= {f"1497758544|C{n:07d}" for n in range(1, 7)}


def test_a_claim_whose_identifier_is_blank_is_refused_not_kept_without_one() -> None:
    """pyx12 takes an element of spaces for a value: the claim is refused by name."""
    data = _generated(2).replace(b"CLM*C0000002*", b"CLM* *", 1)
    items = _read(data)
    assert {i.key for i in items if isinstance(i, SourceRecord)} == {"1497758544|C0000001"}
    (problem,) = [i for i in items if isinstance(i, RecordProblem)]
    assert "CLM01" in problem.text and problem.location.segment_id == "CLM"


def _peak(path: Path, claims: int) -> int:
    with path.open("w") as out:
        out.writelines(claims_837(claims, per_transaction=20))
    tracemalloc.start()
    count = 0
    with path.open("rb") as stream:
        for item in read_x12(stream, path.name, {}):
            assert isinstance(item, SourceRecord)
            count += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == claims
    return peak


def test_memory_does_not_grow_with_the_number_of_claims(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 and 240 claims streamed from a file: the peak stays flat (no tree of the file
    is built; records go as their loops close). A first run fills what is loaded once
    (maps, caches), so that only the reading is compared; the validation remembered per
    distinct segment is left out (it is bounded: ``test_x12_validation``). The bench
    measures 100,000."""
    monkeypatch.setattr(x12_validation.MEMO, "enabled", False)
    _peak(tmp_path / "warm.837", 60)
    small, large = _peak(tmp_path / "small.837", 60), _peak(tmp_path / "large.837", 240)
    assert large < small * 1.3


def test_a_stream_that_cannot_seek_is_spooled_and_read() -> None:
    items = list(read_x12(GeneratedStream(claims_837(5, per_transaction=2)), "pipe.837", {}))
    assert [i.key for i in items] == [f"1497758544|C{n:07d}" for n in range(1, 6)]


# A valid sample made to lose what one record means (its identity or its content): that
# record is refused with the segment named, the others are read. (file, the change as a
# regular expression and its replacement, the segment id named)
BROKEN = [
    (f"{LFH}/837_005010X223A3/two-claims-single-provider.837i", rb"CLM\*756049Q\*", b"CLM**", "CLM"),
    (f"{LFH}/837_005010X223A3/two-claims-single-provider.837i", rb"(DTP\*472\*D8\*2005)04", rb"\g<1>13", "DTP"),
    (f"{LFH}/837_005010X222A2/demo.example1.837", rb"LX\*1~.*(SE\*)", rb"\g<1>", "SE"),
    ("azoner-pyx12/tests/834_deident_family.txt", rb"(DMG\*D8\*\d{4})\d\d", rb"\g<1>13", "DMG"),
    ("azoner-pyx12/tests/834_deident_family.txt", rb"REF\*0F\*[^~]*~\s*", b"", "INS"),
]  # fmt: skip


@pytest.mark.parametrize(("sample", "pattern", "replacement", "named"), BROKEN)
def test_a_broken_record_of_a_sample_is_refused_alone_naming_its_segment(
    sample: str, pattern: bytes, replacement: bytes, named: str
) -> None:
    data = (DATA / sample).read_bytes()
    broken = re.sub(pattern, replacement, data, count=1, flags=re.DOTALL)
    assert broken != data
    plain = [i for i in _read(data) if isinstance(i, SourceRecord)]
    items = _read(broken)
    errors = [i for i in items if isinstance(i, RecordProblem) and not i.is_warning]
    refused = {p.key for p in errors}
    assert len(refused) == 1 and None not in refused
    assert any(p.location.segment_id == named for p in errors)
    assert errors[0].record is not None  # held with the record as read
    read = [i.key for i in items if isinstance(i, SourceRecord)]
    assert len(read) == len(plain) - 1


def test_a_body_that_uses_another_component_separator_is_said_so() -> None:
    items = _read((DATA / LFH / "837_005010X223A3/out-of-network-repriced-claim.837i").read_bytes())
    texts = [i.text for i in items if isinstance(i, RecordProblem)]
    assert any("is '>' the component separator the file uses" in t for t in texts)
