"""X12 read as it is written (``x12_layout``): separators from the ISA, a byte-order mark,
line breaks and spaces around segments and inside them tolerated; any layout of a valid
file maps to exactly the resources of the plain file (hypothesis), in every transaction
the reader reads (834, 837P, 837I, 837D, 278)."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payerbridge.backends.mapping import BUILT_IN_MAPPINGS, Mapping, load_mapping
from payerbridge.backends.model import RecordProblem, SourceRecord
from payerbridge.backends.x12 import read_x12
from payerbridge.backends.x12_layout import LayoutError, read_isa

DATA = Path(__file__).resolve().parents[2] / "data" / "x12"
LFH = "LinuxForHealth-x12"
_MAPPINGS = {
    "834": "x12-834-enrollment/1.0.0",
    "837": "x12-837-eob/1.0.0",
    "278": "x12-278-prior-auth/1.0.0",
}
# Valid files of every transaction read: the mappings' examples and public samples.
BASES = [
    ("837", BUILT_IN_MAPPINGS / _MAPPINGS["837"] / "examples/professional.837"),
    ("837", BUILT_IN_MAPPINGS / _MAPPINGS["837"] / "examples/institutional.837"),
    ("837", BUILT_IN_MAPPINGS / _MAPPINGS["837"] / "examples/dental.837"),
    ("834", BUILT_IN_MAPPINGS / _MAPPINGS["834"] / "examples/family.834"),
    ("278", BUILT_IN_MAPPINGS / _MAPPINGS["278"] / "examples/services.278"),
    ("278", BUILT_IN_MAPPINGS / _MAPPINGS["278"] / "examples/admission.278"),
    ("834", DATA / "azoner-pyx12/tests/834_deident_family.txt"),
    ("837", DATA / LFH / "837_005010X222A2/demo.drug.example10.2.837"),
    ("837", DATA / LFH / "837_005010X223A3/two-claims-single-provider.837i"),
]
_POOL = "*|!^~:>{}`#@$%&+<=?[]\\"


@cache
def _mapping(family: str) -> Mapping:
    return load_mapping(BUILT_IN_MAPPINGS / _MAPPINGS[family])


def _outcome(family: str, data: bytes) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """The resources a file maps to, and its errors (key, segment, text)."""
    mapping = _mapping(family)
    resources: list[dict[str, Any]] = []
    errors = []
    for item in read_x12(io.BytesIO(data), "f.x12", mapping.input_options):
        if isinstance(item, SourceRecord):
            resources += mapping.apply(item.data, source_id="s", namespace="plan")
        elif not item.is_warning:
            errors.append((item.key, item.location.segment, item.text))
    return resources, errors


def _segments(data: bytes) -> tuple[str, list[str], dict[str, str]]:
    """A plain file's ISA, its other segments and its separators."""
    text = data.decode("latin-1").lstrip()
    isa, rest = text[:106], text[106:]
    separators = {"element": isa[3], "component": isa[104], "segment": isa[105]}
    separators["repetition"] = isa[82]
    segments = [s.strip("\r\n") for s in rest.split(isa[105])]
    return isa[:105], [s for s in segments if s], separators


@st.composite
def layouts(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` (a plain, valid file) written another way a sender might write it."""
    isa, segments, old = _segments(data)
    body = (isa + "".join(segments)).replace(old["repetition"], "")
    free = [c for c in _POOL if c not in body]
    new = dict(old)
    if draw(st.booleans()) and len(free) >= 4:
        chosen = draw(st.permutations(free))[:4]
        new = dict(zip(["element", "component", "segment", "repetition"], chosen, strict=True))
    if draw(st.integers(0, 4)) == 0:
        new["segment"] = "\n"  # one segment a line
    table = str.maketrans({old[k]: new[k] for k in old if old[k] != "\n"})
    isa, segments = isa.translate(table), [s.translate(table) for s in segments]
    end = draw(st.sampled_from(["", "\n", "\r\n"]))
    if new["segment"] == "\n":
        end = draw(st.sampled_from(["", "\r"]))
    pads = st.sampled_from(["", "", " ", "  ", "\t"])
    written = [isa + new["segment"] + end]
    for segment in segments:
        lead = draw(pads)
        trail = draw(pads) if new["segment"] != "\n" else ""
        written.append(lead + segment + trail + new["segment"] + end)
    text = "".join(written)
    if new["segment"] != "\n" and draw(st.booleans()):
        width = draw(st.sampled_from([80, 64, 132]))  # wrapped, as some systems write
        text = "\r\n".join(text[i : i + width] for i in range(0, len(text), width))
    prefix = draw(st.sampled_from(["", "\ufeff", "\ufeff\r\n", "  \n"]))
    return prefix.encode("utf-8") + text.encode("latin-1")


@pytest.mark.parametrize(("family", "path"), BASES, ids=[p.name for _, p in BASES])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_layout_of_a_valid_file_maps_to_the_same_resources(
    family: str, path: Path, data: st.DataObject
) -> None:
    plain = path.read_bytes()
    expected = _outcome(family, plain)
    assert expected[0] and not expected[1]
    variant = data.draw(layouts(plain))
    assert _outcome(family, variant) == expected


def test_a_byte_order_mark_and_spaces_are_said_as_layout_warnings() -> None:
    plain = (BASES[0][1]).read_bytes()
    text = plain.decode().replace("~\n", "~\r\n   ")
    items = list(read_x12(io.BytesIO(b"\xef\xbb\xbf" + text.encode()), "f.837", {}))
    warnings = [i for i in items if isinstance(i, RecordProblem) and i.is_warning]
    assert {w.kind for w in warnings} == {"layout"}
    assert any("byte-order mark" in w.text for w in warnings)
    assert all(w.location.segment == 1 for w in warnings)
    assert any(isinstance(i, SourceRecord) for i in items)


_ISA = (
    "ISA*00*          *00*          *ZZ*SENDER         *ZZ*PLAN           "
    "*240115*1200*^*00501*000000001*0*T*:~"
)


def test_the_separators_are_read_where_the_standard_places_them() -> None:
    isa, separators, used = read_isa(_ISA + "GS*")
    assert (separators.element, separators.component, separators.segment) == ("*", ":", "~")
    assert separators.repetition == "^" and used == 106 and isa == _ISA
    wrapped = _ISA[:80] + "\r\n" + _ISA[80:] + "\r\nGS*"
    assert read_isa(wrapped)[:2] == (isa, separators)
    by_line = read_isa(_ISA[:-1] + "\nGS*")[1]
    assert by_line.segment == "\n"
    old = read_isa(_ISA.replace("*00501*", "*00401*").replace("*^*", "*U*") + "GS")[1]
    assert old.repetition is None


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        ("", "the file is empty"),
        ("NM1*IL*1*DOE~", "does not begin with an ISA"),
        ("\xff\xfeI\x00S\x00A\x00", "UTF-16"),
        (_ISA[:50], "ends inside its ISA"),
        (_ISA.replace("SENDER         ", "SENDER"), "ISA06 is 6 characters where the standard fixes 15"),  # noqa: E501
        (_ISA.replace("*:~", "*A~"), "a letter, a digit or a space"),
        (_ISA.replace("*:~", "*:*"), "the same character for two separators"),
    ],
)  # fmt: skip
def test_an_unreadable_isa_is_said_in_one_sentence(head: str, reason: str) -> None:
    with pytest.raises(LayoutError) as raised:
        read_isa(head)
    assert reason in raised.value.reason
    (problem,) = read_x12(io.BytesIO(head.encode("latin-1")), "f.x12", {})
    assert isinstance(problem, RecordProblem) and problem.location.segment == 1
    assert problem.text.startswith("not an X12 interchange: ") and reason in problem.text
