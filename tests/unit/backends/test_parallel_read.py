"""A large file read on a second process (``backends.parallel``): the same records, in
the same order, as read here; a reader that fails fails the ingest."""

from __future__ import annotations

import io
from unittest import mock

import pytest

from payerbridge.backends.model import FileBytes, RecordProblem
from payerbridge.backends.parallel import SecondProcess, read_on_second_process
from payerbridge.backends.readers import read_stream
from payerbridge.errors import MappingError
from tests.unit.backends.x12_files import claims_837

_SMALL_PIECE = 16 * 1024  # the pieces a fed file is handed in: several here


def test_the_second_process_gives_what_reading_here_gives() -> None:
    """Fed in pieces (bytes, a kept file), read twice as X12 is, across several pieces;
    a file on disk it opens itself (the CLI's, tests/e2e/test_sources_cli.py)."""
    text = "".join(claims_837(600, per_transaction=200))  # two hand-overs
    broken = text.replace("CLM*C0000300*", "CLM**", 1)  # a refused record among them
    body = broken.encode()
    assert len(body) > 4 * _SMALL_PIECE
    here = list(read_stream("x12", io.BytesIO(body), "claims.837", {}))
    assert any(isinstance(item, RecordProblem) for item in here)
    assert len(here) > 600
    with mock.patch("payerbridge.backends.parallel._PIECE_BYTES", _SMALL_PIECE):
        fed = list(read_on_second_process("x12", FileBytes(body), "claims.837", {}))
    assert fed == here


def test_a_reader_that_fails_fails_the_ingest() -> None:
    with pytest.raises(MappingError, match="reading broken.csv failed"):
        list(read_on_second_process("no-such-reader", FileBytes(b"a,b\n"), "broken.csv", {}))


def test_only_a_file_as_large_as_the_setting_goes_to_a_second_process() -> None:
    assert SecondProcess(1_000).applies(1_000) and not SecondProcess(1_000).applies(999)
    assert not SecondProcess(0).applies(10**9)  # 0: never
