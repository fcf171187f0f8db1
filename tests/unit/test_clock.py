"""The simulated clock a rehearsal of the rule's clocks runs on (payerbridge.clock)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from payerbridge import clock
from payerbridge.errors import InvalidInput


@pytest.fixture
def wall() -> Iterator[None]:
    yield
    clock.simulate(None)


def _write(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_the_clock_reads_the_file_and_runs_on_from_when_it_was_written(
    tmp_path: Path, wall: None
) -> None:
    path = tmp_path / "now"
    written = datetime.now(UTC) - timedelta(seconds=30)
    _write(path, "2027-03-01T09:00:00Z", int(written.timestamp() * 1e9))
    clock.simulate(path)
    assert clock.is_simulated()
    ran_on = clock.utcnow() - datetime(2027, 3, 1, 9, tzinfo=UTC)
    assert timedelta(seconds=29) < ran_on < timedelta(seconds=40)

    # Rewritten: every reader is at the new instant at once, later or earlier.
    _write(path, "2027-06-01T00:00:00-04:00", int(datetime.now(UTC).timestamp() * 1e9))
    assert clock.utcnow() - datetime(2027, 6, 1, 4, tzinfo=UTC) < timedelta(seconds=5)

    # A file caught half-written keeps the last instant read rather than failing a request.
    _write(path, "not yet", int(datetime.now(UTC).timestamp() * 1e9) + 1000)
    assert clock.utcnow() - datetime(2027, 6, 1, 4, tzinfo=UTC) < timedelta(seconds=5)

    clock.simulate(None)
    assert not clock.is_simulated()
    assert abs(clock.utcnow() - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize("text", ["", "2027-03-01", "2027-03-01T09:00:00", "tomorrow"])
def test_a_clock_file_without_an_instant_and_zone_stops_start_up(
    tmp_path: Path, wall: None, text: str
) -> None:
    path = tmp_path / "now"
    path.write_text(text)
    with pytest.raises(InvalidInput, match="must hold a FHIR instant with a zone"):
        clock.simulate(path)
    with pytest.raises(InvalidInput, match="cannot be read"):
        clock.simulate(tmp_path / "missing")
    assert not clock.is_simulated()
