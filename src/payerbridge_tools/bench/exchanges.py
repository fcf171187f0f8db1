"""``bench exchanges``: end-to-end exchanges per second and orchestration overhead.

Each store runs in its own child process (DBOS is one per process), deployed as in
production: that process plays the API (it records and enqueues exchanges) and either
works the queue itself (``serve``, 0 worker processes) or leaves it to ``workers``
further processes (``serve --no-workers`` beside ``payerbridge worker``), under the
default queue settings, against a fast stub partner in another process. Exchanges go
through the submit use case and the queue, in two phases:

- **one at a time** (after a warm-up): each exchange is submitted when the one before it
  has completed. Its orchestration overhead is first transition → completed minus the
  time in partner calls: the steps, their transactions, DBOS's records and our HTTP
  client, with nothing else competing;
- **all at once**: N exchanges submitted together; throughput is
  N / (last completed − first submitted). The overhead measured the same way under this
  load also counts the time each exchange waits for the others (locks, the GIL).

Queue wait (submitted → the worker's first transition) is reported apart: it is the
queue's polling interval, not work.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from payerbridge.exchange.model import STOPPED_STATES
from payerbridge.types import ClientId, PartnerId
from payerbridge_tools.bench.machine import machine_lines

__all__ = ["ExchangeRun", "report_markdown", "run_exchange_benchmark"]


_WARM_UP = 5
# Old payers the exchanges are spread over (one stub process answers for all): the queue
# holds each to PAYERBRIDGE_PARTNER_CONCURRENCY exchanges in flight.
_PARTNERS = 8


@dataclass(frozen=True)
class ExchangeRun:
    store: str
    workers: int
    exchanges: int
    completed: int
    seconds: float
    per_second: float
    overhead_ms_p50: float  # one at a time
    overhead_ms_p90: float
    loaded_overhead_ms_p50: float  # all at once
    queue_wait_ms_p50: float
    partner_ms_p50: float
    cpu_ms_per_exchange: float = 0.0  # all at once: API and worker processes, not the partner
    # All at once: every process on the machine (the database server, the stub partner and
    # the kernel too); nan where /proc/stat cannot be read.
    host_cpu_ms_per_exchange: float = float("nan")


def run_exchange_benchmark(
    *,
    stores: dict[str, str | None],
    exchanges: int,
    sequential: int,
    workers: Sequence[int],
    repeat: int,
) -> list[list[ExchangeRun]]:
    """``stores`` maps a label to a PostgreSQL admin URL (None: SQLite in a temp dir);
    each store runs with each number of worker processes (0: the API process works)."""
    port = _free_port()
    stub = subprocess.Popen(
        [sys.executable, "-m", "payerbridge_tools.bench.stub_partner", str(port)],
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz")
        return [
            [_child_run(label, url, port, exchanges, sequential, n) for _ in range(repeat)]
            for label, url in stores.items()
            for n in workers
        ]
    finally:
        stub.terminate()
        stub.wait(10)


def _child_run(
    label: str, admin_url: str | None, port: int, exchanges: int, sequential: int, workers: int
) -> ExchangeRun:
    args = [sys.executable, "-m", "payerbridge_tools.bench.exchanges", label, str(port)]
    args += [str(exchanges), str(sequential), str(workers)]
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
        "`payerbridge bench exchanges` runs the API process, alone or beside worker processes,",
        "under the default queue settings (16 exchanges in flight per partner, 0.25 s polling),",
        "against eight stub partners served by one fast process (canned answers from memory,",
        "35-resource Bundle), and reads the recorded transitions. CPU is the time the API and",
        "worker processes spent, per exchange, over the exchanges submitted at once (the stub",
        "partner's is not counted); host CPU is what the whole machine spent busy meanwhile (the",
        "database server, the stub partner and the kernel too: on 2 cores, 100 exchanges/s",
        "allows 20 ms). Overhead is the time from the first transition to `completed`",
        "minus the time spent in partner calls, measured on exchanges run one at a time",
        "(nothing else competing) and, as *under load*, on the N exchanges submitted at once",
        "for the throughput (where it also counts waiting for the other exchanges). Queue wait",
        "(submitted to first transition) is the queue's polling, reported apart. Medians over",
        "the repeats of each run's median.",
        "",
        *machine_lines(),
        f"- repeats per store: {repeat}",
        "",
        "| store | worker processes | exchanges at once | completed | exchanges/s "
        "| overhead ms p50 (one at a time) "
        "| overhead ms p90 (one at a time) | overhead ms p50 (under load) "
        "| queue wait ms p50 (under load) | partner ms p50 | CPU ms per exchange "
        "| host CPU ms per exchange |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for runs in results:
        first = runs[0]

        def med(field: str, runs: list[ExchangeRun] = runs) -> float:
            return float(statistics.median(getattr(r, field) for r in runs))

        lines.append(
            f"| {first.store} | {_workers_label(first.workers)} | {first.exchanges} "
            f"| {min(r.completed for r in runs)} "
            f"| {med('per_second'):.1f} | {med('overhead_ms_p50'):.1f} "
            f"| {med('overhead_ms_p90'):.1f} | {med('loaded_overhead_ms_p50'):.1f} "
            f"| {med('queue_wait_ms_p50'):.1f} "
            f"| {med('partner_ms_p50'):.1f} | {med('cpu_ms_per_exchange'):.1f} "
            f"| {med('host_cpu_ms_per_exchange'):.1f} |"
        )
    return "\n".join(lines) + "\n"


def _workers_label(workers: int) -> str:
    return "0 (the API process works)" if workers == 0 else f"{workers} + the API process"


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

    def find_member(self, partner: Any, identifier: Any, **kwargs: Any) -> Any:
        key = kwargs["idempotency_key"]
        return self._timed(key, lambda: self._inner.find_member(partner, identifier, **kwargs))

    def everything(self, partner: Any, read: Any) -> Any:
        return self._timed(read.idempotency_key, lambda: self._inner.everything(partner, read))

    def search_record(self, partner: Any, read: Any, types: Any) -> Any:
        key = read.idempotency_key
        return self._timed(key, lambda: self._inner.search_record(partner, read, types))

    def refresh_credentials(self, partner: Any) -> None:
        self._inner.refresh_credentials(partner)

    def probe(self, partner: Any, *, timeout: float) -> Any:
        return self._inner.probe(partner, timeout=timeout)

    def check_token(self, partner: Any) -> Any:
        return self._inner.check_token(partner)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _one_run(
    label: str, port: int, exchanges: int, sequential: int, workers: int, admin_url: str | None
) -> ExchangeRun:
    """``workers`` 0: this process runs the queue too (``serve`` with its default worker)."""
    import dataclasses

    from payerbridge.bootstrap import build_platform, launch_workflows, shutdown_workflows
    from payerbridge.collector import settle_for_serving
    from payerbridge.config import load_settings
    from payerbridge.routing.enrolment import StorePartner, store_partner
    from payerbridge.routing.model import Partner

    database_url, cleanup = _fresh_database(admin_url)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp), database_url=database_url, log_level="WARNING")
        platform = build_platform(settings)
        timed = _TimedClient(platform.client)  # used when this process is the worker
        wiring = dataclasses.replace(platform.units.exchange_wiring, client=timed)
        platform.units = dataclasses.replace(platform.units, exchange_wiring=wiring)
        for n in range(_PARTNERS):
            base = f"http://127.0.0.1:{port}/fhir/{n}"
            partner = Partner(PartnerId(f"stub-{n}"), f"Stub Plan {n}", "1245319599", base)
            store_partner(StorePartner(partner, "bench"), platform.units.partners())
        settle_for_serving()  # as ``payerbridge serve`` does before it serves
        launch_workflows(platform, work=workers == 0)
        pool = [_start_worker(Path(tmp), database_url, n) for n in range(workers)]
        try:
            for _ in range(_WARM_UP):
                _wait_completed(platform, [_submit(platform, 0)])
            one_by_one = []
            for _ in range(sequential):
                one_by_one.append(_submit(platform, 0))
                _wait_completed(platform, one_by_one[-1:])
            cpu_before = _cpu_seconds([process.pid for process, _ in pool])
            host_before = _host_busy_seconds()
            at_once = [_submit(platform, n % _PARTNERS) for n in range(exchanges)]
            _wait_completed(platform, at_once)
            cpu = _cpu_seconds([process.pid for process, _ in pool]) - cpu_before
            host = _host_busy_seconds() - host_before
        finally:
            partner_seconds = _stop_workers(pool) if pool else timed.seconds
        run = _measure(platform, label, workers, one_by_one, at_once, partner_seconds)
        run = dataclasses.replace(
            run,
            cpu_ms_per_exchange=cpu * 1000 / exchanges,
            host_cpu_ms_per_exchange=host * 1000 / exchanges,
        )
        shutdown_workflows(platform)
        platform.close()
    cleanup()
    return run


def _cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) of this process and the worker processes so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _host_busy_seconds() -> float:
    """CPU time the whole machine spent busy so far (all cores; idle and I/O wait
    excluded), from /proc/stat; nan elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    ticks = [int(field) for field in fields]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _start_worker(
    data_dir: Path, database_url: str | None, n: int
) -> tuple[subprocess.Popen[bytes], Path]:
    timings = data_dir / f"partner-seconds-{n}.json"
    args = [sys.executable, "-m", "payerbridge_tools.bench.exchanges", "--worker", str(data_dir)]
    args += [f"bench-{n}", str(timings), database_url or ""]
    return subprocess.Popen(args, stdin=subprocess.DEVNULL), timings


def _stop_workers(pool: list[tuple[subprocess.Popen[bytes], Path]]) -> dict[str, float]:
    """SIGTERM each worker, which writes the seconds it spent in partner calls per exchange."""
    seconds: dict[str, float] = defaultdict(float)
    for process, _ in pool:
        process.terminate()
    for process, timings in pool:
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:  # its timings are lost; the run still reports
            process.kill()
            process.wait()
        if timings.exists():
            for exchange_id, spent in json.loads(timings.read_text()).items():
                seconds[exchange_id] += spent
    return seconds


def _worker(data_dir: Path, worker_id: str, timings: Path, database_url: str | None) -> None:
    """A queue worker like ``payerbridge worker``, timing its partner calls."""
    import dataclasses
    import signal
    import threading

    from payerbridge.bootstrap import build_platform, launch_workflows, shutdown_workflows
    from payerbridge.collector import settle_for_serving
    from payerbridge.config import load_settings

    settings = load_settings(
        data_dir=data_dir, database_url=database_url, log_level="WARNING", worker_id=worker_id
    )
    platform = build_platform(settings, run_migrations=False)
    timed = _TimedClient(platform.client)
    wiring = dataclasses.replace(platform.units.exchange_wiring, client=timed)
    platform.units = dataclasses.replace(platform.units, exchange_wiring=wiring)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settle_for_serving()  # as ``payerbridge worker`` does before it works
    launch_workflows(platform, work=True)
    stop.wait()
    shutdown_workflows(platform)
    platform.close()
    timings.write_text(json.dumps(timed.seconds))


def _submit(platform: Any, partner: int) -> str:
    from payerbridge.exchange.intake.submission import ExchangeSubmission, submit_exchange
    from payerbridge.exchange.requests import request_from_document
    from payerbridge.workflows.exchange import enqueue_start

    request = {**_request(), "old_payer": f"stub-{partner}"}
    submitted = submit_exchange(
        ExchangeSubmission(
            request_from_document(request),
            request,
            client_id=ClientId("bench"),
            idempotency_key=str(uuid.uuid4()),
        ),
        platform.units.exchange(),
    )
    enqueue_start(submitted.start)
    return submitted.exchange_id


def _wait_completed(platform: Any, ids: list[str], timeout: float = 600) -> None:
    """Poll the last one's state, then the rest (a cheap read; polling steals little)."""
    deadline = time.monotonic() + timeout
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        if platform.exchanges.current(pending[-1]).state.value in _STOPPED:
            pending.pop()
        else:
            time.sleep(0.002 if len(ids) == 1 else 0.05)


# Where no workflow works on an exchange any more: its run is over.
_STOPPED = {state.value for state in STOPPED_STATES}


@dataclass
class _Timings:
    overheads: list[float]
    waits: list[float]
    partner: list[float]
    completed: int = 0
    first: datetime | None = None
    last: datetime | None = None


def _timings(platform: Any, ids: list[str], partner_seconds: dict[str, float]) -> _Timings:
    timings = _Timings([], [], [])
    for exchange_id in ids:
        record = platform.exchanges.get(exchange_id)
        if record.state.value != "completed":
            continue
        timings.completed += 1
        submitted, picked, done = (
            record.transitions[0].at,
            record.transitions[1].at,
            record.transitions[-1].at,
        )
        in_partner = partner_seconds.get(record.id, 0.0)
        timings.waits.append((picked - submitted).total_seconds() * 1000)
        timings.partner.append(in_partner * 1000)
        timings.overheads.append(((done - picked).total_seconds() - in_partner) * 1000)
        timings.first = submitted if timings.first is None else min(timings.first, submitted)
        timings.last = done if timings.last is None else max(timings.last, done)
    return timings


def _measure(
    platform: Any,
    label: str,
    workers: int,
    one_by_one: list[str],
    at_once: list[str],
    partner_seconds: dict[str, float],
) -> ExchangeRun:
    alone = _timings(platform, one_by_one, partner_seconds)
    loaded = _timings(platform, at_once, partner_seconds)
    seconds = (
        (loaded.last - loaded.first).total_seconds()
        if loaded.first and loaded.last
        else float("nan")
    )
    return ExchangeRun(
        store=label,
        workers=workers,
        exchanges=len(at_once),
        completed=loaded.completed,
        seconds=seconds,
        per_second=loaded.completed / seconds if seconds else 0.0,
        overhead_ms_p50=_median(alone.overheads),
        overhead_ms_p90=_percentile(alone.overheads, 0.9),
        loaded_overhead_ms_p50=_median(loaded.overheads),
        queue_wait_ms_p50=_median(loaded.waits),
        partner_ms_p50=_median(alone.partner + loaded.partner),
    )


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


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
    if sys.argv[1] == "--worker":
        _worker(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), sys.argv[5] or None)
    else:
        run = _one_run(
            sys.argv[1],
            int(sys.argv[2]),
            int(sys.argv[3]),
            int(sys.argv[4]),
            int(sys.argv[5]),
            sys.argv[6] if len(sys.argv) > 6 else None,
        )
        sys.stdout.write(json.dumps(asdict(run)) + "\n")
