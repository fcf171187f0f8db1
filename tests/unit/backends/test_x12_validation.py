"""What the X12 reader remembers to spare pyx12 work gives what pyx12 gives: the findings
of a segment validated once per distinct segment (``x12_validation``), and the walker's
counts kept by path text (``x12_counts``), on samples and generated variants of them."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyx12.nodeCounter import NodeCounter  # type: ignore[import-untyped]

from payerbridge.backends import x12_validation
from payerbridge.backends.x12 import MAPS, _map, read_x12
from payerbridge.backends.x12_counts import PathCounts
from payerbridge.backends.x12_validation import SegmentValidation, segment_key

DATA = Path(__file__).resolve().parents[2] / "data" / "x12"
SAMPLES = sorted(p for p in DATA.rglob("*") if p.is_file())
_EDITS = [b"", b"*", b"~", b"X", b"9", b" ", b":", b"^", b"00", b"N4*"]


def _variant(data: bytes, rng: random.Random) -> bytes:
    """``data`` with a few characters changed and segments repeated or dropped."""
    body = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(body))
        if rng.random() < 0.3:
            end = body.find(b"~", at) + 1
            segment = bytes(body[at:end]) if end > at else b""
            body[at:at] = segment if rng.random() < 0.5 else b""
            if rng.random() < 0.5:
                del body[at : at + len(segment)]
        else:
            body[at : at + 1] = rng.choice(_EDITS)
    return bytes(body)


def _read(data: bytes, *, memo: bool) -> list[str]:
    x12_validation.MEMO.enabled = memo
    try:
        return [repr(item) for item in read_x12(io.BytesIO(data), "v.x12", {})]
    finally:
        x12_validation.MEMO.enabled = True


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_remembered_findings_are_the_asked_ones(seed: int) -> None:
    rng = random.Random(seed)
    for sample in rng.sample(SAMPLES, 4):
        data = _variant(sample.read_bytes(), rng)
        assert _read(data, memo=True) == _read(data, memo=False)


def test_a_segment_is_remembered_under_all_it_is_read_from() -> None:
    from pyx12.segment import Segment  # type: ignore[import-untyped]

    one = Segment("SV1*HC:99213*100*UN*1***1", "~", "*", ":")
    assert segment_key(one) == segment_key(Segment("SV1*HC:99213*100*UN*1***1~", "~", "*", ":"))
    for other in (
        Segment("SV1*HC:99214*100*UN*1***1", "~", "*", ":"),
        Segment("SV1*HC*99213*100*UN*1***1", "~", "*", ":"),
        Segment("SV1*HC:99213*100*UN*1***1", "~", "*", ">"),
        Segment("SV1*HC:99213*100*UN*1***1*", "~", "*", ":"),
    ):
        assert segment_key(one) != segment_key(other)


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyx12.segment import Segment

    monkeypatch.setattr(x12_validation, "SIZE", 10)
    validation = SegmentValidation()
    node = _map(MAPS["005010X222A1"]).getnodebypath("/ISA_LOOP/GS_LOOP/ST_LOOP/ST")
    for number in range(35):
        segment = Segment(f"ST*837*{number:04d}*005010X222A1", "~", "*", ":")
        assert validation.errors(node, segment) == list(node.is_valid_errors(segment)[1])
        assert len(validation._found) <= 10


def _nodes() -> list[object]:
    """The 837P map's loops and segments, the first 400 (as the walker counts them)."""
    found: list[object] = []

    def walk(node: object) -> None:
        found.append(node)
        positions = getattr(node, "pos_map", None) or {}
        for position in sorted(positions):
            for child in positions[position]:
                if child.is_loop() or child.is_segment():
                    walk(child)

    walk(_map(MAPS["005010X222A1"]))
    return found[:400]


NODES = {node.x12path.format(): node.x12path for node in _nodes()}  # type: ignore[attr-defined]
PATHS = list(NODES)
_OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["increment", "reset_to_node", "setCount"]), st.sampled_from(PATHS)),
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(operations=_OPERATIONS)
def test_counts_by_path_text_are_pyx12s_counts(operations: list[tuple[str, str]]) -> None:
    ours, theirs = PathCounts(), NodeCounter()
    for number, (operation, path) in enumerate(operations):
        # A path is given as a map node's path (as the walker does) or as text.
        given_as = NODES[path] if number % 2 else path
        if operation == "setCount":
            ours.setCount(given_as, number)
            theirs.setCount(path, number)
        else:
            getattr(ours, operation)(given_as)
            getattr(theirs, operation)(path)
        assert [ours.get_count(p) for p in PATHS] == [theirs.get_count(p) for p in PATHS]
