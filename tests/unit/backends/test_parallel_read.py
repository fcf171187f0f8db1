"""A large file read on a second process (``backends.parallel``): the same records, in
the same order, as read here; a reader that fails fails the ingest."""

from __future__ import annotations

import io

import pytest

from payerbridge.backends.model import RecordProblem
from payerbridge.backends.parallel import SecondProcess, read_on_second_process
from payerbridge.backends.readers import read_stream
from payerbridge.errors import MappingError
from tests.unit.backends.x12_files import claims_837


def test_the_second_process_gives_what_reading_here_gives() -> None:
    text = "".join(claims_837(600, per_transaction=200))  # two hand-overs
    broken = text.replace("CLM*C0000300*", "CLM**", 1)  # a refused record among them
    body = broken.encode()
    here = list(read_stream("x12", io.BytesIO(body), "claims.837", {}))
    there = list(read_on_second_process("x12", body, "claims.837", {}))
    assert any(isinstance(item, RecordProblem) for item in here)
    assert len(here) > 600 and there == here


def test_a_reader_that_fails_fails_the_ingest() -> None:
    with pytest.raises(MappingError, match="reading broken.csv failed"):
        list(read_on_second_process("no-such-reader", b"a,b\n", "broken.csv", {}))


def test_only_a_file_as_large_as_the_setting_goes_to_a_second_process() -> None:
    assert SecondProcess(1_000).applies(1_000) and not SecondProcess(1_000).applies(999)
    assert not SecondProcess(0).applies(10**9)  # 0: never
