"""The command line as an operator uses it: real processes, real data directories."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from tests.builders import a_coverage, a_patient
from tests.conftest import BACKEND
from tests.servers import free_port_run
from tests.servers import run_cli as _run_cli


def run_cli(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it: ``python -m payerbridge`` in an interpreter of
    its own (the other modules' commands are forked from one that has imported it)."""
    return _run_cli(args, env=env, timeout=timeout, interpreter=True)


# The sandbox and the demo run on SQLite whatever the backend under test (the demo is
# given PAYERBRIDGE_DATABASE_URL=""): the PostgreSQL pass would run the same test again
# (86 s for the demo's), so they run once, on the SQLite pass (ADR 0028).
once = pytest.mark.skipif(
    BACKEND == "postgres", reason="on SQLite whatever the backend; run on the SQLite pass"
)


def digest(folder: Path) -> str:
    hashes = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        hashes.update(path.name.encode() + path.read_bytes())
    return hashes.hexdigest()


@once
def test_sandbox_generate_is_deterministic(tmp_path: Path) -> None:
    args = [
        "sandbox",
        "generate",
        "--payers",
        "2",
        "--members",
        "40",
        "--seed",
        "5",
        "--as-of",
        "2026-11-01",
    ]
    first = run_cli([*args, "--out", str(tmp_path / "a")])
    second = run_cli([*args, "--out", str(tmp_path / "b")])
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    network = orjson.loads((tmp_path / "a" / "network.json").read_bytes())
    assert [p["slug"] for p in network["payers"]] == ["payer-a", "payer-b"]
    other = run_cli([*args[:-3], "6", "--as-of", "2026-11-01", "--out", str(tmp_path / "c")])
    assert other.returncode == 0 and digest(tmp_path / "c") != digest(tmp_path / "a")


def test_import_reports_counts_and_rejects_a_bad_file_whole(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> None:
    env = database_env()
    data_dir = str(tmp_path / "data")
    good = tmp_path / "good.ndjson"
    good.write_bytes(orjson.dumps(a_patient()) + b"\n" + orjson.dumps(a_coverage()) + b"\n")
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(
        orjson.dumps(a_patient("p2"))
        + b"\n{broken\n\n"
        + orjson.dumps({"resourceType": "Nope", "id": "x"})
        + b"\n"
    )
    result = run_cli(["import", "--data-dir", data_dir, str(good), str(bad)], env=env)
    assert result.returncode == 2
    assert "line 2: not valid JSON" in result.stderr
    assert "line 4: unsupported resourceType 'Nope'" in result.stderr
    assert "nothing from this file was stored" in result.stderr
    assert "imported" in result.stderr and "2 resources" in result.stderr
    assert "│ Patient       │ 1" in result.stdout
    again = run_cli(["import", "--data-dir", data_dir, str(good)], env=env)
    assert again.returncode == 0


def test_partners_and_config_commands(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> None:
    env = database_env()
    data_dir = str(tmp_path / "data")
    refused = run_cli(
        [
            "partners",
            "add",
            "--data-dir",
            data_dir,
            "--id",
            "Bad Id",
            "--name",
            "X",
            "--npi",
            "1234567890",
            "--base-url",
            "ftp://x",
        ],
        env=env,
    )
    assert refused.returncode == 2
    assert "npi must be a 10-digit NPI" in refused.stderr and "base_url" in refused.stderr
    added = run_cli(
        [
            "partners",
            "add",
            "--data-dir",
            data_dir,
            "--id",
            "acme",
            "--name",
            "Acme",
            "--npi",
            "1245319599",
            "--base-url",
            "https://acme.example/fhir",
        ],
        env=env,
    )
    assert added.returncode == 0, added.stderr
    listed = run_cli(["partners", "list", "--data-dir", data_dir], env=env)
    assert "acme" in listed.stdout and "https://acme.example/fhir" in listed.stdout
    shown = run_cli(
        ["config", "show", "--data-dir", data_dir],
        env={**env, "PAYERBRIDGE_ORG_NAME": "Configured Plan"},
    )
    config = orjson.loads(shown.stdout)
    assert config["org_name"] == "Configured Plan"
    if env:
        assert config["database_url"] == "**********"


def _leave_in_time_wait(port: int) -> None:
    """A server on the port, stopped after closing a connection first: the port is left
    in TIME_WAIT (a minute), as a stopped ``make run``'s are, with nothing listening."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server closes first: its side waits
            client.recv(1)
    with socket.socket() as plain, contextlib.suppress(OSError):
        plain.bind(("127.0.0.1", port))
        raise AssertionError("the port is not in TIME_WAIT: the test shows nothing")


@once
def test_make_run_refuses_a_busy_port_naming_it_and_how_to_choose_others(tmp_path: Path) -> None:
    base = free_port_run(8)
    _leave_in_time_wait(base + 2)  # a stopped run's: free to listen on again
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 1))  # the second partner's
        taken.listen()
        result = run_cli(
            ["demo", "--data-dir", str(tmp_path / "var"), "--port", str(base + 7),
             "--base-port", str(base)],
            timeout=60,
        )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"port {base + 1} is busy: wanted for sandbox partner 2" in result.stderr
    assert f"port {base + 2} " not in result.stderr  # TIME_WAIT is not busy
    assert "--port N --base-port M" in result.stderr and "make run PORT=N" in result.stderr
    assert not (tmp_path / "var" / "sandbox").exists()  # nothing started, nothing generated
    clash = run_cli(
        ["demo", "--data-dir", str(tmp_path / "var"), "--port", str(base + 1),
         "--base-port", str(base)],
        timeout=60,
    )  # fmt: skip
    assert clash.returncode == 2 and "wanted twice" in clash.stderr


@once
@pytest.mark.timeout(480)  # eight servers and the demo's steps: minutes on a loaded machine
def test_make_run_routes_an_exchange_to_each_partner_and_sigterm_stops_every_process(
    tmp_path: Path,
) -> None:
    """``make run``: three sandbox partners (HRex 1.0.0/PDex 2.0 without MemberId, HRex
    1.1.0/PDex 2.1, HRex 1.2.0/PDex 2.2 announcing maintenance windows) and two whose
    history comes from a plan's own systems, one exchange to each: every one completes,
    each route is shown, each partner saw the request in its own version's shape. Then it
    serves: the commands it prints act as it, a partner stops and starts from another
    terminal, and SIGTERM stops every process it started. One demo for all of it: each
    run costs some 40 s of CPU."""
    # Five partners, a FHIR server and the plan's own (the destination) at base..base+6,
    # the platform at base+7.
    base = free_port_run(8)
    ports = [base + n for n in range(8)]
    var, log = tmp_path / "var", tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "payerbridge", "demo", "--data-dir", str(var),
             "--members", "30", "--port", str(base + 7), "--base-port", str(base),
             # set just before the exchanges; loaded CI machines took more than 4 s
             "--window-seconds", "6",
             "--no-weekly-maintenance"],  # the run must not depend on the day of the week
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PAYERBRIDGE_DATABASE_URL": "", "COLUMNS": "200"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while "serving" not in log.read_text(errors="replace"):
            assert demo.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        assert all(_listening(port) for port in ports)  # all eight serve
        _check_each_partner_was_asked_in_its_own_version(log.read_text(errors="replace"), var, base)
        _check_printed_commands_act_as_the_demo(log.read_text(errors="replace"), base + 7)
        _check_one_partner_stops_and_starts_while_the_others_serve(var, demo, log, ports)
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=60)
        deadline = time.monotonic() + 30
        while any(_listening(port) for port in ports):  # every instance has exited
            assert time.monotonic() < deadline, [p for p in ports if _listening(p)]
            time.sleep(0.2)
    finally:
        if demo.poll() is None:  # a check failed: SIGTERM stops what it started, kill does not
            demo.send_signal(signal.SIGTERM)
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()


def _check_each_partner_was_asked_in_its_own_version(output: str, var: Path, base: int) -> None:
    """Every exchange completed, each route shown, each partner saw its own version's
    shape, and each partner's data directory says who it is."""
    from payerbridge.config import load_settings

    assert "exchanges completed: 5 of 5" in output, output
    # Each record delivered to the plan's own FHIR server, counted there (ADR 0053).
    assert len(re.findall(r"delivery of \w+: delivered, [1-9]\d* written", output)) == 5, output
    arrived = re.search(r"arrived at the plan's FHIR server \([^)]*\): (.*)", output)
    # Each member's: the old payer's Patient, and her one Patient there (ADR 0054).
    assert arrived is not None and "Patient 10" in arrived.group(1), output
    # The partners whose history comes from the plan's own systems, and what it came by.
    assert "x12-834-enrollment@1.1.0" in output and "x12-837-eob@1.1.0" in output
    assert "mappings: fhir-server-quirks@1.0.0" in output
    assert output.count("completeness: complete") == 5
    assert "$member-match as HRex 1.0.0, member found by Patient?identifier=" in output
    assert "not chosen: MemberId: HRex 1.0.0 answers no MemberId" in output
    assert "$member-match as HRex 1.1.0, member found by MemberId" in output
    assert "$member-match as HRex 1.2.0, member found by MemberId" in output
    assert "waited: in its maintenance window until" in output and "a short window" in output
    # Provider Access at the first old payer: its provider's export, one member opted out.
    provider = re.search(
        r"provider access at \S+: provider \d{10} attributed (\d+) members by the payer's "
        r"claims; its export gave (\d+) members' records \(.*ExplanationOfBenefit [1-9].*\); "
        r"member \S+ opted out of it and was left out",
        output,
    )
    assert provider is not None, output
    assert int(provider.group(2)) == int(provider.group(1)) - 1 > 0, output
    # What each exchange received, read back by the plan's own client with no consent.
    read = re.findall(r"\$everything \((\d+) records, read by the plan's own", output)
    assert len(read) == 5 and all(int(n) > 0 for n in read), output
    network = orjson.loads((var / "sandbox" / "network" / "network.json").read_bytes())
    seen = {
        payer["slug"]: (var / "sandbox" / payer["slug"] / "server.log").read_text()
        for payer in network["payers"]
    }
    slugs = [payer["slug"] for payer in network["payers"]]
    for slug, version in zip(slugs, ("1.0.0", "1.1.0", "1.2.0"), strict=True):
        log = seen[slug]
        assert f'"request_shape":"{version}","answer_shape":"{version}"' in log, slug
    # Only the HRex 1.0.0 partner was searched for the member; each read the record.
    assert '"method":"GET","path":"/fhir/Patient","status":200' in seen[slugs[0]]
    assert all('"path":"/fhir/Patient","status":200' not in seen[s] for s in slugs[1:])
    everything = '"path":"/fhir/Patient/{patient_id}/$everything","status":200'
    assert all(everything in log for log in seen.values())
    # Found as a plan finds real payers: the first by its .well-known, two by a directory.
    assert f"{slugs[0]}: found by its HRex .well-known alone" in output, output
    assert f"{slugs[1]}, {slugs[2]}: imported from the sandbox's directory bundle" in output
    # Read from the platform's database at once (a CLI process per partner costs seconds).
    with sqlite3.connect(var / "payerbridge.db") as db:
        kept = dict(db.execute("SELECT id, endpoints FROM partners").fetchall())
    for slug, source in zip(slugs, ("well-known", "directory", "directory"), strict=True):
        endpoints = orjson.loads(kept[slug])
        assert [e["source"].split()[0] for e in endpoints] == [source], endpoints
    # Each partner's data directory says who it is: a command given it acts as that payer.
    for index, payer in enumerate(network["payers"]):
        settings = load_settings(data_dir=var / "sandbox" / payer["slug"], database_url=None)
        assert (settings.org_npi, settings.port) == (payer["npi"], base + index), payer


def _check_printed_commands_act_as_the_demo(output: str, port: int) -> None:
    """On ports not the defaults, the commands the demo prints act as its platform: the
    token minted is accepted, ``pulls schedule`` is not refused ``recipient-mismatch``."""
    env = {"PAYERBRIDGE_DATABASE_URL": ""}
    printed = re.search(r"a token:\s+payerbridge (token issue .*)", output)
    assert printed is not None, output
    issued = run_cli(printed.group(1).split(), env=env)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    answer = httpx.get(
        f"http://127.0.0.1:{port}/exchanges",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    # The printed member data link, with the token the printed reader command mints.
    reader = re.search(r"to read them: payerbridge (token issue .*?) \(", output)
    link = re.search(r"member data:\s+(\S+/\$everything)", output)
    assert reader is not None and link is not None, output
    minted = run_cli(reader.group(1).split(), env=env)
    assert minted.returncode == 0, minted.stderr
    records = httpx.get(
        link.group(1), headers={"Authorization": f"Bearer {minted.stdout.strip()}"}, timeout=30
    )
    assert records.status_code == 200, records.text
    completed = [e["id"] for e in answer.json()["items"] if e["state"] == "completed"]
    assert completed, answer.text
    scheduled = run_cli(
        [
            "pulls",
            "schedule",
            "--exchange",
            completed[0],
            "--data-dir",
            printed.group(1).split()[3],
        ],
        env=env,
    )
    assert "recipient-mismatch" not in scheduled.stderr + scheduled.stdout
    assert scheduled.returncode == 0, scheduled.stderr


def _check_one_partner_stops_and_starts_while_the_others_serve(
    data_dir: Path, demo: subprocess.Popen[bytes], log: Path, ports: list[int]
) -> None:
    """``sandbox partner stop|start`` from another terminal; a partner that dies is
    reported and the rest keep serving."""
    stopped = run_cli(["sandbox", "partner", "stop", "payer-b", "--data-dir", str(data_dir)])
    assert stopped.returncode == 0, stopped.stderr
    others = [p for p in ports if p != ports[1]]
    assert not _listening(ports[1]) and all(_listening(p) for p in others)
    assert demo.poll() is None, log.read_text(errors="replace")
    started = run_cli(["sandbox", "partner", "start", "payer-b", "--data-dir", str(data_dir)])
    assert started.returncode == 0, started.stderr
    metadata = httpx.get(f"http://127.0.0.1:{ports[1]}/fhir/metadata", timeout=30)
    assert metadata.status_code == 200
    listed = run_cli(["sandbox", "partner", "list", "--data-dir", str(data_dir)])
    pid = re.search(r"payer-c: running \(port \d+, pid (\d+)\)", listed.stdout)
    assert pid is not None, listed.stdout + listed.stderr
    os.kill(int(pid.group(1)), signal.SIGKILL)  # a partner dies
    deadline = time.monotonic() + 30
    while "payer-c exited" not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.2)
    assert demo.poll() is None and all(_listening(p) for p in ports if p != ports[2])
    ports.remove(ports[2])  # no longer served: the SIGTERM check below skips it


def _listening(port: int) -> bool:
    """Whether something accepts connections on the port (a closed server's port may stay
    unbindable a while for its connections' TIME_WAIT)."""
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
