"""``bench exchanges``: end-to-end exchanges per second and orchestration overhead.

Each store runs in its own child process (DBOS is one per process): a platform with an
in-process worker, a fast stub partner in another process, N exchanges submitted at
once through the submit use case and the queue. From the recorded transitions and the
time the partner client spent in calls, per exchange:

- queue wait: submitted → the worker's first transition;
- orchestration overhead: first transition → completed, minus time in partner calls
  (the steps, their transactions, DBOS's records and our HTTP client);
- throughput: N / (last completed − first submitted).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from payerbridge.bench.machine import machine_lines

__all__ = ["ExchangeRun", "report_markdown", "run_exchange_benchmark"]


@dataclass(frozen=True)
class ExchangeRun:
    store: str
    exchanges: int
    completed: int
    seconds: float
    per_second: float
    overhead_ms_p50: float
    overhead_ms_p90: float
    queue_wait_ms_p50: float
    partner_ms_p50: float


def run_exchange_benchmark(
    *, stores: dict[str, str | None], exchanges: int, repeat: int
) -> list[list[ExchangeRun]]:
    """``stores`` maps a label to a PostgreSQL admin URL (None: SQLite in a temp dir)."""
    port = _free_port()
    stub = subprocess.Popen(
        [sys.executable, "-m", "payerbridge.bench.stub_partner", str(port)],
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz")
        return [
            [_child_run(label, url, port, exchanges) for _ in range(repeat)]
            for label, url in stores.items()
        ]
    finally:
        stub.terminate()
        stub.wait(10)


def _child_run(label: str, admin_url: str | None, port: int, exchanges: int) -> ExchangeRun:
    args = [sys.executable, "-m", "payerbridge.bench.exchanges", label, str(port), str(exchanges)]
    if admin_url:
        args.append(admin_url)
    result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark run failed:\n{result.stderr[-2000:]}")
    return ExchangeRun(**json.loads(result.stdout.strip().splitlines()[-1]))


def report_markdown(results: list[list[ExchangeRun]], *, repeat: int) -> str:
    lines = [
        "# Benchmark: exchange orchestration",
        "",
        "`payerbridge bench exchanges` submits N exchanges at once to a platform with one",
        "in-process worker and a fast stub partner (canned answers from memory, 35-resource",
        "Bundle), then reads the recorded transitions. Overhead is the time from the worker's",
        "first transition to `completed` minus the time spent in partner calls. Medians over",
        "the repeats of each run's median.",
        "",
        *machine_lines(),
        f"- repeats per store: {repeat}",
        "",
        "| store | exchanges | completed | median exchanges/s | median overhead ms (p50) "
        "| overhead ms (p90) | queue wait ms (p50) | partner ms (p50) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for runs in results:
        first = runs[0]

        def med(field: str, runs: list[ExchangeRun] = runs) -> float:
            return statistics.median(getattr(r, field) for r in runs)

        lines.append(
            f"| {first.store} | {first.exchanges} | {min(r.completed for r in runs)} "
            f"| {med('per_second'):.1f} | {med('overhead_ms_p50'):.1f} "
            f"| {med('overhead_ms_p90'):.1f} | {med('queue_wait_ms_p50'):.1f} "
            f"| {med('partner_ms_p50'):.1f} |"
        )
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the stub partner did not start")


class _TimedClient:
    """The real partner client, timing each call per exchange (keys start with its id)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.seconds: dict[str, float] = defaultdict(float)

    def _timed(self, key: str, call: Any) -> Any:
        started = time.perf_counter()
        try:
            return call()
        finally:
            self.seconds[key.split(":")[0]] += time.perf_counter() - started

    def member_match(self, partner: Any, parameters: Any, **kwargs: Any) -> Any:
        key = kwargs["idempotency_key"]
        return self._timed(key, lambda: self._inner.member_match(partner, parameters, **kwargs))

    def everything(self, partner: Any, member_ref: str, **kwargs: Any) -> Any:
        key = kwargs["idempotency_key"]
        return self._timed(key, lambda: self._inner.everything(partner, member_ref, **kwargs))

    def refresh_credentials(self, partner: Any) -> None:
        self._inner.refresh_credentials(partner)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _one_run(label: str, port: int, exchanges: int, admin_url: str | None) -> ExchangeRun:
    import dataclasses

    from payerbridge.bootstrap import build_platform, launch_workflows, shutdown_workflows
    from payerbridge.config import load_settings
    from payerbridge.exchange.schemas import ExchangeCreate
    from payerbridge.exchange.service import submit_exchange
    from payerbridge.routing.model import Partner
    from payerbridge.workflows.exchange import enqueue_exchange

    database_url, cleanup = _fresh_database(admin_url)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            data_dir=Path(tmp),
            database_url=database_url,
            log_level="WARNING",
            partner_concurrency=8,
            worker_concurrency=8,
            queue_polling_seconds=0.05,
        )
        platform = build_platform(settings)
        timed = _TimedClient(platform.client)
        platform.exchange_ports = dataclasses.replace(platform.exchange_ports, client=timed)
        partner = Partner("stub", "Stub Plan", "1245319599", f"http://127.0.0.1:{port}/fhir")
        platform.partners.register(partner, actor="bench")
        launch_workflows(platform, work=True)
        request = _request()
        parsed = ExchangeCreate.model_validate(request)
        started = time.perf_counter()
        for _ in range(exchanges):
            submission = submit_exchange(
                platform.exchange_ports,
                parsed.to_domain(),
                request,
                client_id="bench",
                request_id=None,
                idempotency_key=str(uuid.uuid4()),
            )
            enqueue_exchange(submission.exchange_id, "stub")
        while platform.exchanges.counts_by_state().get("completed", 0) < exchanges:
            if time.perf_counter() - started > 600:
                break
            time.sleep(0.05)
        run = _measure(platform, label, exchanges, timed.seconds)
        shutdown_workflows()
        platform.close()
    cleanup()
    return run


def _measure(
    platform: Any, label: str, exchanges: int, partner_seconds: dict[str, float]
) -> ExchangeRun:
    total, records = platform.exchanges.list_page(state=None, limit=exchanges, offset=0)
    overheads, waits, partner = [], [], []
    first: datetime | None = None
    last: datetime | None = None
    completed = 0
    for summary in records:
        record = platform.exchanges.get(summary.id)
        if record.state.value != "completed":
            continue
        completed += 1
        submitted, picked, done = (
            record.transitions[0].at,
            record.transitions[1].at,
            record.transitions[-1].at,
        )
        waits.append((picked - submitted).total_seconds() * 1000)
        in_partner = partner_seconds.get(record.id, 0.0)
        partner.append(in_partner * 1000)
        overheads.append(((done - picked).total_seconds() - in_partner) * 1000)
        first = submitted if first is None or submitted < first else first
        last = done if last is None or done > last else last
    seconds = (last - first).total_seconds() if first and last else float("nan")
    return ExchangeRun(
        store=label,
        exchanges=exchanges,
        completed=completed,
        seconds=seconds,
        per_second=completed / seconds if seconds else 0.0,
        overhead_ms_p50=statistics.median(overheads),
        overhead_ms_p90=_percentile(overheads, 0.9),
        queue_wait_ms_p50=statistics.median(waits),
        partner_ms_p50=statistics.median(partner),
    )


def _request() -> dict[str, Any]:
    from datetime import date, timedelta

    today = date.today()
    return {
        "old_payer": "stub",
        "member": {
            "given": ["Bench"],
            "family": "Member",
            "birth_date": "1980-01-01",
            "gender": "female",
        },
        "old_coverage": {"member_id": "M1", "subscriber_id": None, "relationship": "self"},
        "new_coverage": {"member_id": "N1", "subscriber_id": None, "relationship": "self"},
        "consent": {
            "policy": "regular",
            "start": str(today - timedelta(days=1)),
            "end": str(today + timedelta(days=365)),
            "source_reference": "DocumentReference/bench-consent",
        },
    }


def _fresh_database(admin_url: str | None) -> tuple[str | None, Any]:
    if not admin_url:
        return None, lambda: None
    import psycopg

    name = f"pbbench_{uuid.uuid4().hex[:10]}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{plain.rsplit('/', 1)[0]}/{name}", drop


if __name__ == "__main__":
    run = _one_run(
        sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None
    )
    sys.stdout.write(json.dumps(asdict(run)) + "\n")
