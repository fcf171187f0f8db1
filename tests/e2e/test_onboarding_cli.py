"""Plan-year onboarding by ``payerbridge onboard`` between two payer processes (by API:
test_onboarding.py): run again, the command reports the same run rather than repeat it;
killed mid-run, it carries the run on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.e2e.onboarding import FOUR, PARTNER, imported, old_payers_patients, two_payers
from tests.servers import ServerProcess


@pytest.fixture
def payers(
    server: Callable[..., ServerProcess], tmp_path: Path
) -> tuple[ServerProcess, ServerProcess]:
    return two_payers(server, tmp_path)


def test_the_cli_onboards_a_file_and_run_again_reports_the_same_run(
    payers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    _, new = payers
    members = tmp_path / "members.ndjson"
    members.write_bytes(b"\n".join(orjson.dumps(m) for m in FOUR[1:3]) + b"\n")
    args = ("onboard", "--partner", PARTNER, "--members", str(members))
    first = new.cli(*args)
    assert first.returncode == 0, first.stderr
    assert "match" in first.stdout and "completed" in first.stdout
    before = len(imported(new))
    again = new.cli(*args)
    assert again.returncode == 0, again.stderr
    assert len(imported(new)) == before  # the run is the same: nothing imported twice
    broken = tmp_path / "broken.ndjson"
    broken.write_bytes(orjson.dumps(FOUR[1]) + b"\n{not json\n")
    refused = new.cli("onboard", "--partner", PARTNER, "--members", str(broken))
    assert refused.returncode == 2 and "line 2: not JSON" in refused.stderr


def test_an_onboarding_killed_mid_run_carries_on_when_the_command_is_run_again(
    payers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    """The new payer's CLI alone (no server of its own running): SIGKILLed after its first
    round trip, the same command recovers the run and finishes it, importing nobody twice."""
    _, new = payers
    new.stop()
    members = tmp_path / "members.ndjson"
    members.write_bytes(b"\n".join(orjson.dumps(m) for m in FOUR) + b"\n")
    env = {**os.environ, **new.env, "PAYERBRIDGE_ONBOARDING_CHUNK_MEMBERS": "1"}
    command = [
        sys.executable, "-m", "payerbridge", "onboard", "--partner", PARTNER,
        "--members", str(members), "--data-dir", str(new.data_dir),
    ]  # fmt: skip
    with (tmp_path / "first.log").open("wb") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while not imported(new):  # the first member's history is in
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "nothing was imported in time"
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait()
    patients_then = len(old_payers_patients(imported(new)))
    assert patients_then == 1
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "completed" in again.stdout
    patients = old_payers_patients(imported(new))
    assert sorted(p["name"][0]["given"][0] for p in patients) == ["Ana", "Luis"]
