"""``bench idle``: the CPU an idle server costs, per process, side against side.

Each round starts, for every side (a source tree and settings, as ``bench online`` takes
them) and every backend (SQLite in the data dir; PostgreSQL on a fresh database), two
deployments on fresh data dirs, all at once, with nothing sent to them:

- ``serve``: one process serving the APIs and working the queues (what ``make run`` and
  ``payerbridge demo`` start);
- ``serve --no-workers`` beside ``payerbridge worker``: the API process that only
  enqueues, and the worker that works.

After a warm-up (start-up work done, the upkeep's first ticks run), each process's CPU
seconds (user + system, every thread, children included, from ``/proc/<pid>/stat``) are
read over the same window: CPU seconds, not wall time, so the figure holds on a machine
that is busy with something else. Then the wake-up latency of each process that works
the queues is measured: workflows are enqueued on the ``exchanges`` queue from this
process (as an API-only process enqueues for a worker) at random moments, and the time
from enqueue to start is read from DBOS's records every 10 ms. The rounds alternate the
sides' order; medians are reported. ``--warm-up`` should pass DBOS's first 60 s, when it
polls its schedules every second.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from payerbridge_tools.bench.identity_online import (
    free_port,
    server_env,
    stop_process,
    wait_healthy,
)
from payerbridge_tools.bench.machine import process_cpu_seconds
from payerbridge_tools.bench.online_ab import Side, _commit_of, _trees

__all__ = ["IdleRun", "Reading", "report_markdown", "run_idle", "summary_rows"]

# The processes of a deployment, as their roles are named in the report.
SERVE = "serve"
API_ONLY = "serve --no-workers"
WORKER = "worker"
ROLES = (SERVE, API_ONLY, WORKER)
_CHECKOUT = Path(__file__).resolve().parents[3]
# What the wake-up probes run: a harmless, idempotent workflow every tree registers.
_PROBE_WORKFLOW = "audit_checkpoint"
_PROBE_QUEUE = "exchanges"


@dataclass(frozen=True)
class Reading:
    """One process's figures in one round."""

    side: str
    backend: str
    role: str
    round: int
    cpu_seconds: float
    seconds: float
    wake_ms: tuple[float, ...] = ()  # enqueue to start, for a process that works the queues

    @property
    def percent(self) -> float:
        """Of one core."""
        return 100 * self.cpu_seconds / self.seconds


@dataclass(frozen=True)
class IdleRun:
    sides: tuple[Side, ...]
    backends: tuple[str, ...]
    seconds: float
    warm_up: float
    readings: tuple[Reading, ...]
    commits: Mapping[str, str] = field(default_factory=dict)

    def of(self, side: str, backend: str, role: str) -> list[Reading]:
        return [r for r in self.readings if (r.side, r.backend, r.role) == (side, backend, role)]


# -- processes -------------------------------------------------------------------------------


@dataclass
class _Process:
    role: str
    process: subprocess.Popen[bytes]
    log: Path
    system_url: str  # DBOS's system database, for the wake-up probes


def _fresh_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    import psycopg

    name = f"pbidle_{uuid.uuid4().hex[:10]}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{plain.rsplit('/', 1)[0]}/{name}", drop


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "payerbridge", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def _wait_for_line(process: subprocess.Popen[bytes], log: Path, text: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None or text in log.read_text(errors="replace"):
            break
        time.sleep(0.2)
    if process.poll() is not None or text not in log.read_text(errors="replace"):
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"the worker did not start within {seconds:g}s:\n{tail}")


@contextlib.contextmanager
def _deployments(
    src: Path, settings: Mapping[str, str], database_url: str | None, scratch: Path
) -> Iterator[list[_Process]]:
    """``serve`` on one fresh data dir, ``serve --no-workers`` and ``worker`` on another."""
    started: list[_Process] = []
    dropped: list[Callable[[], None]] = []
    try:
        for combined in (True, False):
            data_dir = Path(tempfile.mkdtemp(dir=scratch))
            env = server_env(data_dir)
            env.update(PYTHONPATH=str(src), PYTHONHASHSEED="0", **settings)
            system_url = f"sqlite:///{data_dir / 'workflows.db'}"
            if database_url is not None:
                url, drop = _fresh_database(database_url)
                dropped.append(drop)
                env["PAYERBRIDGE_DATABASE_URL"] = url.replace(
                    "postgresql://", "postgresql+psycopg://"
                )
                system_url = url.replace("postgresql://", "postgresql+psycopg://")
            port = free_port()
            args = ["serve", "--data-dir", str(data_dir), "--port", str(port)]
            role = SERVE if combined else API_ONLY
            log = data_dir / f"{role.split()[0]}.log"
            process = _start(args if combined else [*args, "--no-workers"], env, log)
            started.append(_Process(role, process, log, system_url))
            wait_healthy(process, f"http://127.0.0.1:{port}", log, 120)
            if not combined:
                log = data_dir / "worker.log"
                args = ["worker", "--data-dir", str(data_dir), "--worker-id", "idle-worker"]
                process = _start(args, env, log)
                started.append(_Process(WORKER, process, log, system_url))
                _wait_for_line(process, log, "running", 120)
        yield started
    finally:
        for one in started:
            stop_process(one.process)
        for drop in dropped:
            drop()


def _cpu(pid: int) -> float:
    return process_cpu_seconds(pid, children=True)


# -- wake-up latency -------------------------------------------------------------------------


def _wake_ms(system_url: str, probes: int, rng: random.Random) -> tuple[float, ...]:
    """Enqueue ``probes`` harmless workflows one after another at random moments (so
    they land anywhere in a poll's interval); for each, the time from enqueueing it to
    seeing it started (DBOS's SQLite records hold whole seconds: read here, every 10 ms)."""
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=system_url)
    try:
        waits = []
        for _ in range(probes):
            time.sleep(rng.uniform(0.5, 1.5))
            workflow_id = f"idle-probe-{uuid.uuid4().hex}"
            options = {
                "workflow_name": _PROBE_WORKFLOW,
                "queue_name": _PROBE_QUEUE,
                "workflow_id": workflow_id,
                "queue_partition_key": "idle-bench",
            }
            enqueued = time.perf_counter()
            client.enqueue(options, None, None)  # type: ignore[arg-type]
            _wait_started(client, workflow_id)
            waits.append(1000 * (time.perf_counter() - enqueued))
        return tuple(waits)
    finally:
        client.destroy()


def _wait_started(client: object, workflow_id: str, timeout: float = 60) -> None:
    sys_db = client._sys_db  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = sys_db.get_workflow_status(workflow_id)
        if status is not None and status["status"] != "ENQUEUED":
            return
        time.sleep(0.01)
    raise RuntimeError(f"probe {workflow_id} was not started within {timeout:g}s")


# -- the run ---------------------------------------------------------------------------------


def run_idle(
    sides: Sequence[Side],
    *,
    backends: Mapping[str, str | None],
    seconds: float = 60,
    rounds: int = 3,
    warm_up: float = 75,
    probes: int = 10,
    progress: Callable[[str], None] = lambda _: None,
) -> IdleRun:
    """Every side's deployments on every backend, idle, ``rounds`` times."""
    readings: list[Reading] = []
    rng = random.Random(0)
    with (
        tempfile.TemporaryDirectory(prefix="pb-idle-") as scratch,
        _trees(sides, Path(scratch), _CHECKOUT) as trees,
    ):
        commits = {s.source: _commit_of(trees[s.source].parent) for s in sides}
        for round_ in range(1, rounds + 1):
            order = list(sides) if round_ % 2 else list(reversed(sides))
            with contextlib.ExitStack() as stack:
                running: list[tuple[Side, str, _Process]] = []
                for side in order:
                    for backend, url in backends.items():
                        progress(f"round {round_}: starting {side.name} on {backend}")
                        for one in stack.enter_context(
                            _deployments(trees[side.source], side.settings, url, Path(scratch))
                        ):
                            running.append((side, backend, one))
                progress(f"round {round_}: warming up for {warm_up:g}s")
                time.sleep(warm_up)
                before = {id(p): _cpu(p.process.pid) for _, _, p in running}
                start = time.monotonic()
                time.sleep(seconds)
                after = {id(p): _cpu(p.process.pid) for _, _, p in running}
                window = time.monotonic() - start
                for side, backend, one in running:
                    waits: tuple[float, ...] = ()
                    if one.role != API_ONLY and probes:
                        waits = _wake_ms(one.system_url, probes, rng)
                    reading = Reading(
                        side.name,
                        backend,
                        one.role,
                        round_,
                        after[id(one)] - before[id(one)],
                        window,
                        waits,
                    )
                    readings.append(reading)
                    progress(
                        f"round {round_}: {side.name} {backend} {one.role}: "
                        f"{reading.percent:.2f} % of a core"
                        + (f", wake-up {statistics.median(waits):.0f} ms" if waits else "")
                    )
    return IdleRun(tuple(sides), tuple(backends), seconds, warm_up, tuple(readings), commits)


# -- the report ------------------------------------------------------------------------------


def summary_rows(run: IdleRun) -> list[tuple[str, ...]]:
    """Per backend, role and side: the median % of a core, each round's, and the median
    wake-up latency."""
    rows: list[tuple[str, ...]] = []
    for backend in run.backends:
        for role in ROLES:
            for side in run.sides:
                readings = run.of(side.name, backend, role)
                if not readings:
                    continue
                waits = [w for r in readings for w in r.wake_ms]
                rows.append(
                    (
                        backend,
                        role,
                        side.name,
                        f"{statistics.median(r.percent for r in readings):.2f}",
                        ", ".join(f"{r.percent:.2f}" for r in readings),
                        f"{statistics.median(waits):.0f}" if waits else "",
                        f"{max(waits):.0f}" if waits else "",
                    )
                )
    return rows


SUMMARY_HEADER = (
    "backend",
    "process",
    "side",
    "% of a core (median)",
    "each round",
    "wake-up ms p50",
    "wake-up ms max",
)


def report_markdown(run: IdleRun, machine: Sequence[str]) -> str:
    lines = [
        "# Benchmark: an idle server's CPU",
        "",
        f"`payerbridge bench idle` starts each side's deployments on fresh data dirs and "
        f"sends them nothing: `serve` (APIs and queue work in one process, as `make run` "
        f"starts it) and `serve --no-workers` beside `worker`. After a {run.warm_up:g} s "
        f"warm-up it reads each process's CPU seconds (user + system, every thread, "
        f"children included, `/proc/<pid>/stat`) over {run.seconds:g} s: CPU time, not wall "
        "time, so the figure holds on a busy machine. Wake-up is the time from enqueueing a "
        "workflow on the `exchanges` queue (from another process, at random moments) to "
        "seeing it started in DBOS's records (read every 10 ms). Medians over the rounds; "
        "the sides alternate their order round by round.",
        "",
        *machine,
        "",
        "| side | source |",
        "|---|---|",
        *(f"| {s.name} | {s.describe(run.commits.get(s.source))} |" for s in run.sides),
        "",
        "| " + " | ".join(SUMMARY_HEADER) + " |",
        "|---|---|---|---:|---|---:|---:|",
        *("| " + " | ".join(row) + " |" for row in summary_rows(run)),
        "",
    ]
    return "\n".join(lines)
