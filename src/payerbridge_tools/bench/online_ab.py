"""Online ``$member-match``, side against side in one run (``payerbridge bench online``).

A side is a source tree (a git revision, checked out as a worktree for the run, or a
directory holding ``src/payerbridge``) and settings (``PAYERBRIDGE_*`` variables), so
the same command compares a change with the commit before it, or one commit with its
tracing off and on. On this shared 2-core VM the wall clock of one run swings by more
than the bounds it is asked to settle (3 % for issue 53, 5 % for issue 54), so:

- each tree loads the same generated population with its own code, once; every round
  serves a fresh copy of it, so no side reads a database another side grew;
- the sides alternate, in reverse order every other round, and a pair's ratio is read
  within its round as well as by the medians;
- the server is pinned to one core and the load generator (this process) to the other;
- the server's CPU per request is read from ``/proc`` beside the requests/s;
- with ``counted_requests``, each side also serves under ``valgrind --tool=callgrind`` and
  the instructions its event loop's thread ran for a fixed number of requests are
  counted (``callgrind_control -i on``/``off`` around them). A count does not depend on
  the machine's speed that minute; it leaves out the background threads, whose work
  follows the clock rather than the requests (DBOS's pollers, the WAL checkpointer) and
  the span exporter's, whose cost at the default ratio is a hundredth of a kept trace's
  (ADR 0033).

Every side must give the same answers (200s and 422s): a side that does not is named in
the result. Nothing about the people is printed or logged.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
from joserfc.jwk import ECKey

from payerbridge_tools.bench.identity_data import generate_identity_set
from payerbridge_tools.bench.identity_online import (
    access_token,
    free_port,
    request_bodies,
    server_env,
    stop_process,
    wait_healthy,
    wire_requests,
    write_population,
)
from payerbridge_tools.bench.loadgen import run_load

__all__ = [
    "Measurement",
    "OnlineAB",
    "Side",
    "parse_side",
    "report_markdown",
    "run_online_ab",
    "summary_header",
    "summary_rows",
]

_SIDE = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)=(?P<source>[^,]+)(?P<settings>(,[^,]+)*)$")
_SETTING = re.compile(r"^PAYERBRIDGE_[A-Z0-9_]+=.*$")
_TICKS = os.sysconf("SC_CLK_TCK")
# A revision is looked up in the checkout this bench runs from.
_CHECKOUT = Path(__file__).resolve().parents[3]
# Run in a tree's own interpreter path: its code loads the population and registers the
# requesting payer, whose private key it writes to the file named third.
_LOAD_SCRIPT = """
import sys
from pathlib import Path
import orjson
from payerbridge_tools.bench.identity_online import load_population
key = load_population(Path(sys.argv[1]), Path(sys.argv[2])).key
Path(sys.argv[3]).write_bytes(orjson.dumps({**key.as_dict(private=True), "kid": key.kid}))
"""


@dataclass(frozen=True)
class Side:
    """What one side serves: ``source`` a git revision or a directory holding
    ``src/payerbridge``, with ``settings`` set in its server's environment."""

    name: str
    source: str
    settings: Mapping[str, str] = field(default_factory=dict)

    def describe(self, commit: str | None = None) -> str:
        """The source as given (and the commit it was, when another), and its settings."""
        text = self.source if commit in (None, self.source) else f"{self.source} ({commit})"
        extra = ", ".join(f"{k}={v}" for k, v in sorted(self.settings.items()))
        return text + (f" with {extra}" if extra else "")


def parse_side(text: str) -> Side:
    """``NAME=SOURCE[,PAYERBRIDGE_X=VALUE...]``; ValueError naming what is wrong."""
    found = _SIDE.match(text.strip())
    if found is None:
        raise ValueError(f"a side is NAME=SOURCE[,PAYERBRIDGE_SETTING=VALUE...], not {text!r}")
    settings: dict[str, str] = {}
    for item in filter(None, found["settings"].split(",")):
        if not _SETTING.match(item):
            raise ValueError(
                f"side {found['name']}: a setting is PAYERBRIDGE_NAME=VALUE, not {item!r}"
            )
        key, value = item.split("=", 1)
        settings[key] = value
    return Side(found["name"], found["source"], settings)


@dataclass(frozen=True)
class Measurement:
    """One side's figures in one round."""

    side: str
    round: int
    per_second: float
    cpu_ms: float  # the server process's CPU (user + system, every thread) per request
    answers: tuple[tuple[int, int], ...]  # (status, count), sorted
    instructions: float | None = None  # millions per request on the event loop's thread


@dataclass(frozen=True)
class OnlineAB:
    sides: tuple[Side, ...]
    measurements: tuple[Measurement, ...]
    members: int
    requests: int
    connections: int
    timed_requests: int
    counted_requests: int | None
    pinned: bool
    commits: Mapping[str, str] = field(default_factory=dict)  # source -> what it was

    def of(self, side: str) -> list[Measurement]:
        return [m for m in self.measurements if m.side == side]

    def ratios(self, side: str, attribute: str) -> list[float]:
        """``side``'s figure over the first side's, round by round."""
        base = {m.round: getattr(m, attribute) for m in self.of(self.sides[0].name)}
        return [getattr(m, attribute) / base[m.round] for m in self.of(side) if base.get(m.round)]

    def differing_answers(self) -> list[str]:
        """Sides whose answers differ from the first side's first round."""
        first = self.measurements[0].answers
        return sorted({m.side for m in self.measurements if m.answers != first})


# -- source trees ----------------------------------------------------------------------------


@contextlib.contextmanager
def _trees(sides: Sequence[Side], scratch: Path, repo: Path) -> Iterator[dict[str, Path]]:
    """Each side's source as a ``src`` directory: a directory as given, a revision checked
    out as a detached worktree for the run (removed however it ends)."""
    made: list[Path] = []
    trees: dict[str, Path] = {}
    try:
        for source in dict.fromkeys(side.source for side in sides):
            directory = Path(source)
            if (directory / "src" / "payerbridge").is_dir():
                trees[source] = (directory / "src").resolve()
                continue
            worktree = scratch / f"tree-{len(made)}"
            done = subprocess.run(
                ["git", "-C", str(repo), "worktree", "add", "--detach", str(worktree), source],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise ValueError(
                    f"{source!r} is neither a directory holding src/payerbridge nor a "
                    f"revision of {repo}: {done.stderr.strip()}"
                )
            made.append(worktree)
            trees[source] = worktree / "src"
        yield trees
    finally:
        for worktree in made:
            subprocess.run(
                ["git", "-C", str(repo), "worktree", "remove", "--force", str(worktree)],
                capture_output=True,
            )


def _commit_of(tree: Path) -> str:
    """The commit a tree holds, short, and whether it was changed since ("+")."""
    head = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    if not head:
        return "not a git checkout"
    changed = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{head}+" if changed else head


def _tree_env(src: Path, settings: Mapping[str, str], data_dir: Path) -> dict[str, str]:
    env = server_env(data_dir)
    env["PYTHONPATH"] = str(src)
    env["PYTHONHASHSEED"] = "0"
    env.update(settings)
    return env


def _load(src: Path, data_dir: Path, population: Path) -> ECKey:
    """The population imported, indexed and trained by the tree's own code; the
    requesting payer's key it registered."""
    key_file = data_dir.parent / f"{data_dir.name}.key.json"
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, str(data_dir), str(population), str(key_file)],
        env=_tree_env(src, {}, data_dir),
        capture_output=True,
    )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"loading the population with {src} failed:\n" + "\n".join(tail))
    return ECKey.import_key(orjson.loads(key_file.read_bytes()))


# -- the server ------------------------------------------------------------------------------


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that reads each batch and answers 200, for sides that trace."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@contextlib.contextmanager
def _otlp_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _serving(
    env: dict[str, str], data_dir: Path, *, pin: bool, callgrind: Path | None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    command = [] if not pin else ["taskset", "-c", "1"]
    if callgrind is not None:
        command += [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            "--instr-atstart=no",
            f"--callgrind-out-file={callgrind}",
        ]
    command += [sys.executable, "-m", "payerbridge", "serve", "--data-dir", str(data_dir)]
    command += ["--host", "127.0.0.1", "--no-workers", "--port", str(port)]
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            startup = 900.0 if callgrind is not None else 120.0
            wait_healthy(process, f"http://127.0.0.1:{port}", log_path, startup)
            yield port, process
        finally:
            if callgrind is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)  # valgrind writes its files as it exits
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=600)
            stop_process(process)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _instructions(prefix: Path) -> float:
    """The instructions the main thread ran while counting was on (its file's totals)."""
    main = prefix.with_name(f"{prefix.name}-01")  # thread 1's file
    if not main.exists():
        raise RuntimeError(f"callgrind wrote no file for the main thread at {prefix}-01")
    for line in main.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):  # its "summary:" line counts nothing toggled on
            return float(line.split()[1])
    raise RuntimeError(f"{main} holds no totals")


# -- a run -----------------------------------------------------------------------------------


@dataclass
class _Plan:
    warmup: int
    timed: int
    repeats: int
    connections: int
    counted: int | None
    pin: bool


def _measure(
    side: Side,
    round_number: int,
    pristine: Path,
    key: ECKey,
    bodies: Sequence[bytes],
    plan: _Plan,
    src: Path,
    scratch: Path,
    sink: str,
) -> Measurement:
    data_dir = scratch / f"run-{round_number}-{side.name}"
    shutil.copytree(pristine, data_dir)
    try:
        settings = dict(side.settings)
        if settings.get("PAYERBRIDGE_TRACING") == "otlp":
            settings.setdefault("PAYERBRIDGE_OTLP_ENDPOINT", sink)
        env = _tree_env(src, settings, data_dir)
        answers: Counter[int] = Counter()
        with _serving(env, data_dir, pin=plan.pin, callgrind=None) as (port, process):
            wire = wire_requests(port, access_token(port, key), bodies)
            run_load("127.0.0.1", port, wire, count=plan.warmup, connections=plan.connections)
            cpu_before = _cpu_seconds(process.pid)
            rates, served = [], 0
            for _ in range(plan.repeats):
                result = run_load(
                    "127.0.0.1", port, wire, count=plan.timed, connections=plan.connections
                )
                rates.append(result.per_second)
                answers.update(result.statuses)
                served += result.requests
            cpu_ms = (_cpu_seconds(process.pid) - cpu_before) * 1000 / max(served, 1)
        instructions = None
        if plan.counted is not None:
            instructions = _counted(env, data_dir, key, bodies, plan) / plan.counted / 1e6
        return Measurement(
            side.name,
            round_number,
            statistics.median(rates),
            cpu_ms,
            tuple(sorted(answers.items())),
            instructions,
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _counted(
    env: dict[str, str], data_dir: Path, key: ECKey, bodies: Sequence[bytes], plan: _Plan
) -> float:
    """Instructions of the event loop's thread over ``plan.counted`` requests, the
    server under callgrind (on the copy the timed run left: the same for every side)."""
    prefix = data_dir / "callgrind.out"
    with _serving(env, data_dir, pin=plan.pin, callgrind=prefix) as (port, process):
        wire = wire_requests(port, access_token(port, key), bodies)
        run_load("127.0.0.1", port, wire, count=min(plan.warmup, 400), connections=plan.connections)
        _callgrind_control("-i", "on", process.pid)
        run_load("127.0.0.1", port, wire, count=plan.counted or 0, connections=plan.connections)
        _callgrind_control("-i", "off", process.pid)
    return _instructions(prefix)


def _callgrind_control(*args: object) -> None:
    subprocess.run(
        ["callgrind_control", *map(str, args)], check=True, capture_output=True, timeout=120
    )


def run_online_ab(
    sides: Sequence[Side],
    *,
    members: int,
    requests: int,
    rounds: int,
    timed_requests: int,
    repeats: int = 3,
    connections: int = 8,
    warmup: int = 1_500,
    counted_requests: int | None = None,
    seed: int = 42,
    repo: Path = _CHECKOUT,
    progress: Callable[[str], None] = lambda _: None,
) -> OnlineAB:
    """Every side in every round (the order reversed each other round), each on a fresh
    copy of the population its tree loaded."""
    if len({s.name for s in sides}) != len(sides) or len(sides) < 2:
        raise ValueError("name two sides or more, each once")
    if counted_requests is not None and shutil.which("callgrind_control") is None:
        raise ValueError("counting instructions needs valgrind (apt-get install valgrind)")
    pin = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    plan = _Plan(warmup, timed_requests, repeats, connections, counted_requests, pin)
    data = generate_identity_set(members, seed=seed, requests=requests)
    bodies = request_bodies(data, range(data.request_count))
    measurements: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="payerbridge-bench-ab-") as tmp:
        scratch = Path(tmp)
        population = scratch / "members.ndjson"
        write_population(data, population)
        with _trees(sides, scratch, repo) as trees, _otlp_sink() as sink:
            commits = {source: _commit_of(src.parent) for source, src in trees.items()}
            pristine: dict[str, tuple[Path, ECKey]] = {}
            for source, src in trees.items():
                loaded = scratch / f"pristine-{len(pristine)}"
                loaded.mkdir()
                progress(f"loading {members:,} members with {source}'s code")
                pristine[source] = (loaded, _load(src, loaded, population))
            previous = os.sched_getaffinity(0)
            if pin:
                os.sched_setaffinity(0, {0})
            try:
                for number in range(1, rounds + 1):
                    order = sides if number % 2 else list(reversed(sides))
                    for side in order:
                        copy, key = pristine[side.source]
                        found = _measure(
                            side, number, copy, key, bodies, plan, trees[side.source], scratch, sink
                        )
                        measurements.append(found)
                        progress(_progress_line(found))
            finally:
                os.sched_setaffinity(0, previous)
    return OnlineAB(
        tuple(sides),
        tuple(measurements),
        members,
        len(bodies),
        connections,
        timed_requests,
        counted_requests,
        pin,
        commits,
    )


def _progress_line(m: Measurement) -> str:
    line = f"round {m.round} {m.side}: {m.per_second:,.0f} requests/s, {m.cpu_ms:.3f} CPU ms"
    if m.instructions is not None:
        line += f", {m.instructions:.4f} M instructions"
    return line + " a request"


# -- the report ------------------------------------------------------------------------------


def _median_change(ratios: Sequence[float]) -> str:
    return f"{(statistics.median(ratios) - 1) * 100:+.1f} %" if ratios else ""


def summary_rows(result: OnlineAB) -> list[list[str]]:
    """Per side: the medians of requests/s, CPU and instructions a request, each beside
    the median of its pairs' ratios to the first side (blank for the first side)."""
    rows = []
    for index, side in enumerate(result.sides):
        runs = result.of(side.name)
        row = [side.name, side.describe(result.commits.get(side.source))]
        for attribute, shown in (("per_second", "{:,.0f}"), ("cpu_ms", "{:.3f}")):
            row.append(shown.format(statistics.median(getattr(m, attribute) for m in runs)))
            row.append(_median_change(result.ratios(side.name, attribute) if index else []))
        counts = [m.instructions for m in runs if m.instructions is not None]
        if result.counted_requests is not None:
            row.append(f"{statistics.median(counts):.4f}" if counts else "")
            row.append(_median_change(result.ratios(side.name, "instructions") if index else []))
        rows.append(row)
    return rows


def summary_header(result: OnlineAB) -> list[str]:
    header = ["side", "source", "requests/s", "pairs' median", "CPU ms/request", "pairs' median"]
    if result.counted_requests is not None:
        header += ["M instructions/request", "pairs' median"]
    return header


def report_markdown(result: OnlineAB, machine: Sequence[str]) -> str:
    header = summary_header(result)
    lines = ["# Benchmark: online `$member-match`, side against side in one run", ""]
    lines += list(machine)
    lines += [
        "",
        f"{result.members:,} generated members (seed 42), {result.requests:,} distinct "
        f"requests. Each round serves each side on a fresh copy of the population its own "
        f"code loaded (`payerbridge serve --no-workers`, SQLite), "
        + ("the server pinned to core 1 and the load to core 0; " if result.pinned else "")
        + f"a warm-up, then the median of the timed runs of {result.timed_requests:,} "
        f"requests over {result.connections} keep-alive connections. The order of the "
        "sides is reversed every other round; a pair is one round's two figures.",
    ]
    if result.counted_requests is not None:
        lines += [
            "",
            f"Instructions: the same copy served again under callgrind, "
            f"{result.counted_requests:,} requests counted on the event loop's thread "
            "(background threads, which follow the clock, and the span exporter left out).",
        ]
    differing = result.differing_answers()
    lines += [
        "",
        "Answers: "
        + (
            "the same on every side and round ("
            + ", ".join(f"{n:,} × {s}" for s, n in result.measurements[0].answers)
            + ")."
            if not differing
            else "DIFFERENT on "
            + ", ".join(differing)
            + " ("
            + "; ".join(
                f"{m.side} round {m.round}: " + ", ".join(f"{n:,} × {s}" for s, n in m.answers)
                for m in result.measurements
            )
            + ")."
        ),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(result)]
    lines += [
        "",
        "## Each round",
        "",
        "| round | side | requests/s | CPU ms/request | M instructions |",
    ]
    lines += ["|---:|---|---:|---:|---:|"]
    for m in result.measurements:
        counted = "" if m.instructions is None else f"{m.instructions:.4f}"
        lines.append(f"| {m.round} | {m.side} | {m.per_second:,.0f} | {m.cpu_ms:.3f} | {counted} |")
    return "\n".join(lines) + "\n"
