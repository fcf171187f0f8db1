"""``payerbridge bench everything``: one member with a long history moved between two payer
processes, ``$everything`` paged end to end.

For each history size an old payer (SQLite, its own data dir) holds one member with that
many resources, and a new payer runs one exchange for the member with real tokens. We
report the time to a completed exchange, the pages, and each process's peak resident
memory (``VmHWM``) before and after: the old payer's should not grow with the history
(it streams the decision and reads page by page); the requester's grows, since it still
holds the merged record to normalize it in one commit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from joserfc.jwk import ECKey

from payerbridge_tools.bench.machine import machine_lines, process_cpu_seconds

__all__ = ["EverythingRun", "report_markdown", "run_everything_benchmark"]

_POLL_SECONDS = 0.1

_OLD_NPI, _NEW_NPI = "1245319599", "1234567893"
_TYPES = ("Observation", "Encounter", "Condition", "Procedure", "MedicationRequest")
_SCOPE = "system/*.rs http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match"


@dataclass(frozen=True)
class EverythingRun:
    resources: int
    pages: int
    received: int
    seconds: float
    old_rss_before_mb: float
    old_rss_peak_mb: float
    new_rss_before_mb: float
    new_rss_peak_mb: float
    # CPU each payer process spent on the exchange: less swayed than the time by what
    # else the machine runs (an A/B's sides in turns on a shared machine).
    old_cpu_seconds: float = float("nan")
    new_cpu_seconds: float = float("nan")


def _history(path: Path, size: int) -> None:
    """The member (Patient, Coverage) and ``size - 2`` records citing a few shared
    Organizations and Practitioners."""
    start = date(2022, 1, 1)
    with path.open("wb") as out:
        for shared in range(20):
            out.write(orjson.dumps({"resourceType": "Organization", "id": f"org{shared}"}) + b"\n")
            out.write(orjson.dumps({"resourceType": "Practitioner", "id": f"dr{shared}"}) + b"\n")
        patient = {
            "resourceType": "Patient",
            "id": "m1",
            "name": [{"family": "Member", "given": ["Bench"]}],
            "birthDate": "1980-01-01",
            "gender": "female",
            "identifier": [{"system": "http://old.example/mb", "value": "M1"}],
        }
        coverage = {
            "resourceType": "Coverage",
            "id": "m1-cov",
            "status": "active",
            "beneficiary": {"reference": "Patient/m1"},
            "identifier": [{"system": "http://old.example/mb", "value": "M1"}],
            "payor": [{"reference": "Organization/org0"}],
        }
        out.write(orjson.dumps(patient) + b"\n" + orjson.dumps(coverage) + b"\n")
        for n in range(size - 2):
            kind = _TYPES[n % len(_TYPES)]
            subject = "patient" if kind in ("AllergyIntolerance",) else "subject"
            record: dict[str, Any] = {
                "resourceType": kind,
                "id": f"r{n}",
                "status": "final" if kind == "Observation" else "completed",
                subject: {"reference": "Patient/m1"},
                "code": {"coding": [{"system": "http://loinc.org", "code": f"{1000 + n % 97}-1"}]},
                "performer": [{"reference": f"Practitioner/dr{n % 20}"}],
                "recordedDate": str(start + timedelta(days=n % 1400)),
            }
            out.write(orjson.dumps(record) + b"\n")


def _cli(args: list[str], env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "payerbridge", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stderr[-2000:]}")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(data_dir: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "payerbridge", "serve", "--data-dir", str(data_dir),
         "--port", str(port)],
        env=env,
        stdout=(data_dir / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the server in {data_dir} did not start")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _jwks_file(directory: Path) -> tuple[Path, ECKey]:
    key = ECKey.generate_key("P-384", private=True)
    key = ECKey.import_key(key.as_dict(private=True), {"kid": key.thumbprint(), "alg": "ES384"})
    path = directory / "ops.jwks.json"
    path.write_bytes(orjson.dumps({"keys": [key.as_dict(private=False)]}))
    return path, key


def _one_run(size: int, page_size: int) -> EverythingRun:
    root = Path(tempfile.mkdtemp(prefix="pb-bench-everything-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        old_dir, new_dir = root / "old", root / "new"
        old_port, new_port = _free_port(), _free_port()
        base = {**os.environ, "PAYERBRIDGE_ENVIRONMENT": "test"}
        base.pop("PAYERBRIDGE_DATABASE_URL", None)
        old_env = {
            **base,
            "PAYERBRIDGE_ORG_NPI": _OLD_NPI,
            "PAYERBRIDGE_ORG_NAME": "Old Plan",
            "PAYERBRIDGE_PUBLIC_BASE_URL": f"http://127.0.0.1:{old_port}",
            "PAYERBRIDGE_EVERYTHING_PAGE_SIZE": str(page_size),
        }
        new_env = {
            **base,
            "PAYERBRIDGE_ORG_NPI": _NEW_NPI,
            "PAYERBRIDGE_ORG_NAME": "New Plan",
            "PAYERBRIDGE_PUBLIC_BASE_URL": f"http://127.0.0.1:{new_port}",
            "PAYERBRIDGE_EXCHANGE_BUDGET_SECONDS": "3600",
            "PAYERBRIDGE_STEP_BUDGET_SECONDS": "1800",
            "PAYERBRIDGE_PARTNER_TIMEOUT_SECONDS": "300",
        }
        old_dir.mkdir(parents=True)
        new_dir.mkdir(parents=True)
        history = root / "member.ndjson"
        _history(history, size)
        _cli(["import", "--data-dir", str(old_dir), str(history)], old_env)
        jwks = subprocess.run(
            [sys.executable, "-m", "payerbridge", "keys", "client-jwks", "--data-dir",
             str(new_dir)],
            env=new_env, capture_output=True, check=True,
        ).stdout  # fmt: skip
        (root / "new.jwks.json").write_bytes(jwks)
        _cli(["clients", "add", "--data-dir", str(old_dir), "--id", "newplan", "--name",
              "New Plan", "--npi", _NEW_NPI, "--jwks", str(root / "new.jwks.json"),
              "--scope", _SCOPE], old_env)  # fmt: skip
        _cli(["partners", "add", "--data-dir", str(new_dir), "--id", "old", "--name",
              "Old Plan", "--npi", _OLD_NPI, "--base-url", f"http://127.0.0.1:{old_port}/fhir",
              "--client-id", "newplan"], new_env)  # fmt: skip
        ops_jwks, _ = _jwks_file(root)
        _cli(["clients", "add", "--data-dir", str(new_dir), "--id", "ops", "--name", "Ops",
              "--npi", _NEW_NPI, "--jwks", str(ops_jwks), "--scope",
              "payerbridge/exchanges"], new_env)  # fmt: skip
        token = subprocess.run(
            [sys.executable, "-m", "payerbridge", "token", "issue", "--data-dir", str(new_dir),
             "--client", "ops", "--scope", "payerbridge/exchanges"],
            env=new_env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        old = _serve(old_dir, old_env, old_port)
        processes.append(old)
        new = _serve(new_dir, new_env, new_port)
        processes.append(new)
        old_before, new_before = _peak_rss_mb(old.pid), _peak_rss_mb(new.pid)
        old_cpu, new_cpu = process_cpu_seconds(old.pid), process_cpu_seconds(new.pid)
        started = time.perf_counter()
        with httpx.Client(
            base_url=f"http://127.0.0.1:{new_port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        ) as client:
            response = client.post(
                "/exchanges", json=_request(), headers={"Idempotency-Key": "bench-everything"}
            )
            if response.status_code != 202:
                raise RuntimeError(f"the exchange was refused: {response.text[:500]}")
            location = response.headers["location"]
            while True:
                exchange = client.get(location).json()
                if exchange["state"] in (
                    "completed",
                    "partial",
                    "conflict",
                    "failed",
                    "blocked",
                    "dead_lettered",
                ):
                    break
                time.sleep(_POLL_SECONDS)
        # Timed by the exchange's own history, from its first state to its last: the poll
        # would round every run up to its next tick (0.5 s made 3.1 s and 3.6 s of one time).
        seconds = _span(exchange["history"]) or time.perf_counter() - started
        if exchange["state"] != "completed":
            raise RuntimeError(f"the exchange ended {exchange['state']}: {exchange}")
        received = next(s for s in exchange["history"] if s["to"] == "received")
        pages = received["detail"]["pages"]
        return EverythingRun(
            resources=size,
            pages=len(pages),
            received=sum(pages),
            seconds=seconds,
            old_rss_before_mb=old_before,
            old_rss_peak_mb=_peak_rss_mb(old.pid),
            new_rss_before_mb=new_before,
            new_rss_peak_mb=_peak_rss_mb(new.pid),
            old_cpu_seconds=process_cpu_seconds(old.pid) - old_cpu,
            new_cpu_seconds=process_cpu_seconds(new.pid) - new_cpu,
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def _request() -> dict[str, Any]:
    today = date.today()
    return {
        "old_payer": "old",
        "member": {
            "given": ["Bench"],
            "family": "Member",
            "birth_date": "1980-01-01",
            "gender": "female",
        },
        "old_coverage": {"member_id": "M1", "relationship": "self"},
        "new_coverage": {"member_id": "N1", "relationship": "self"},
        "consent": {
            "policy": "regular",
            "start": str(today - timedelta(days=1)),
            "end": str(today + timedelta(days=365)),
            "source_reference": "DocumentReference/bench-consent",
        },
    }


def _span(history: list[dict[str, Any]]) -> float | None:
    """Seconds from the first recorded move of an exchange to its last."""
    moments = [
        datetime.fromisoformat(h["at"].replace("Z", "+00:00")) for h in history if h.get("at")
    ]
    return (max(moments) - min(moments)).total_seconds() if len(moments) > 1 else None


def run_everything_benchmark(
    sizes: list[int], *, page_size: int, on_run: Any = None
) -> list[EverythingRun]:
    runs = []
    for size in sizes:
        run = _one_run(size, page_size)
        if on_run is not None:
            on_run(run)
        runs.append(run)
    return runs


def report_markdown(runs: list[EverythingRun], *, page_size: int) -> str:
    lines = [
        "# $everything benchmark: one member's long history, paged between two processes",
        "",
        "Generated by `payerbridge bench everything`. One old payer (SQLite) holds one "
        "member with the given number of resources; a new payer runs one exchange for that "
        f"member with real tokens; the old payer answers `$everything` in pages of "
        f"{page_size} under a `regular` consent (everything judged). Peak RSS is each "
        "server process's `VmHWM` (API and worker in one process), before the exchange "
        "and after it completed.",
        "",
        *machine_lines(),
        "",
        "| resources | pages | entries received | exchange s | old payer peak RSS MB "
        "(before → after) | new payer peak RSS MB (before → after) | old payer CPU s | "
        "new payer CPU s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.resources:,} | {run.pages} | {run.received:,} | {run.seconds:.2f} | "
            f"{run.old_rss_before_mb:.0f} → {run.old_rss_peak_mb:.0f} | "
            f"{run.new_rss_before_mb:.0f} → {run.new_rss_peak_mb:.0f} | "
            f"{run.old_cpu_seconds:.2f} | {run.new_cpu_seconds:.2f} |"
        )
    lines += [
        "",
        "Entries received count each page's transmitter Provenance and the shared "
        "resources reached, besides the member's records.",
        "",
    ]
    return "\n".join(lines)
