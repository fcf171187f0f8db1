"""The heartbeat and staleness settings of ADR 0049 hold together."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from payerbridge.config import load_settings


def test_the_defaults_beat_every_ten_seconds_and_judge_after_forty_five(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert (settings.worker_heartbeat_seconds, settings.worker_stale_seconds) == (10, 45.0)


def test_a_heartbeat_divides_a_minute_and_the_staleness_spans_two(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="must divide 60"):
        load_settings(data_dir=tmp_path, worker_heartbeat_seconds=7)
    with pytest.raises(ValidationError, match="at least twice the heartbeat"):
        load_settings(data_dir=tmp_path, worker_heartbeat_seconds=10, worker_stale_seconds=15)
    settings = load_settings(data_dir=tmp_path, worker_heartbeat_seconds=1, worker_stale_seconds=3)
    assert settings.worker_stale_seconds == 3
