"""Online ``$member-match`` over HTTP for ``bench identity``: latency and throughput.

``HttpMemberMatchLatency`` satisfies ``bench.identity.MemberMatchLatency``. Against
a population of an ``IdentitySet`` it:

1. streams the members as FHIR NDJSON (a Patient and a Coverage line each) into a
   temporary data dir and imports them through ``Platform.import_members``, so the
   identity index is built in the import's transaction exactly as in production, then
   trains and activates a model as ``payerbridge identity train`` does (the load time
   reported is import, index and training; writing the NDJSON is not counted);
2. registers a requesting payer and starts one real ``payerbridge serve`` process
   (SQLite in the temporary dir, no workflow worker, the brute-force guard raised
   out of the way since the bench resends the same requests);
3. sends warm-up requests (not counted), then each chosen request once,
   sequentially on one keep-alive connection, timing each call at the client;
4. sends a fixed number of requests over several keep-alive connections at once, three
   times (the median is the requests per second), from ``bench.loadgen`` (a client far
   cheaper than the server, so the number is the server's);
5. stops the server, sends the same load to ``bench.bare_endpoint`` (a FastAPI endpoint
   that only parses the body) for reference, and removes the data dir.

Latency is wall time at the client over loopback, so it bounds the server's own
time from above (it adds the HTTP round trip and the client's parsing); nothing is
added to the server to time it. 200 (matched) and 422 (no single match) are both
answers; any other status, or a transport failure, is counted as an error and
named in the result's ``note``. Nothing about the people (names, dates, ids) is
logged or printed.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from joserfc.jwk import ECKey

from payerbridge.partners.auth import token_form
from payerbridge.security.model import MEMBER_MATCH_SCOPE
from payerbridge_tools.bench.identity import OnlineLatency
from payerbridge_tools.bench.identity_data import IdentitySet
from payerbridge_tools.bench.loadgen import build_request, run_load

__all__ = [
    "HttpMemberMatchLatency",
    "LoadedPopulation",
    "access_token",
    "free_port",
    "load_population",
    "request_bodies",
    "server_env",
    "stop_process",
    "wait_healthy",
    "wire_requests",
    "write_population",
]

logger = logging.getLogger(__name__)

_MEMBER_MATCH = "/fhir/Patient/$member-match"
_ANSWERS = frozenset({200, 422})
_REQUESTER_NPI = "1234567893"
_REQUESTER_ID = "bench-requester"
# Throughput runs per server (the median is reported): one run swings by a tenth.
_THROUGHPUT_REPEATS = 3


# -- loading ---------------------------------------------------------------------------------


def write_population(data: IdentitySet, path: Path) -> int:
    """Write every member as a Patient line and a Coverage line; the number of lines.

    One member at a time, so a million members never sit in memory as JSON.
    """
    lines = 0
    with path.open("wb") as handle:
        for i in range(data.member_count):
            patient, coverage = data.member_resources(i)
            handle.write(orjson.dumps(patient, option=orjson.OPT_APPEND_NEWLINE))
            handle.write(orjson.dumps(coverage, option=orjson.OPT_APPEND_NEWLINE))
            lines += 2
    return lines


def _database_url(data_dir: Path) -> str:
    """The instance's own SQLite file, named explicitly so that an ambient
    ``PAYERBRIDGE_DATABASE_URL`` can never point the bench at a real database."""
    return f"sqlite:///{(data_dir / 'payerbridge.db').resolve()}"


@dataclass(frozen=True)
class LoadedPopulation:
    """The requesting payer's private key, and how long importing and training took."""

    key: ECKey
    import_seconds: float
    train_seconds: float


def load_population(data_dir: Path, path: Path) -> LoadedPopulation:
    """Import ``path`` (and index its members) into the instance in ``data_dir``, train and
    activate a model on them, register the requesting payer (SMART Backend Services)."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings
    from payerbridge.identity.service import TrainModel, train_on_members
    from payerbridge.security.model import AddClient, ClientKeys
    from payerbridge.security.registration import smart_client
    from payerbridge.security.registry import add_client

    platform = build_platform(
        load_settings(data_dir=data_dir, database_url=_database_url(data_dir))
    )
    try:
        started = time.perf_counter()
        report = platform.import_members(path)
        if not report.accepted:  # line numbers only: the messages are not needed here
            lines = ", ".join(str(e.line) for e in report.errors[:5])
            raise RuntimeError(
                f"the bench population was rejected: {report.error_count} "
                f"invalid lines (first: {lines})"
            )
        imported = time.perf_counter() - started
        started = time.perf_counter()
        train_on_members(TrainModel(seed=42), platform.units.identity())  # as identity train
        trained = time.perf_counter() - started
        key = ECKey.generate_key("P-384", private=True)
        key = ECKey.import_key(key.as_dict(private=True), {"kid": key.thumbprint()})
        public = {**key.as_dict(private=False), "kid": key.kid}
        client = smart_client(
            _REQUESTER_ID,
            "Bench Requester",
            _REQUESTER_NPI,
            MEMBER_MATCH_SCOPE,
            ClientKeys(jwks={"keys": [public]}),
        )
        add_client(AddClient(client, "bench"), platform.units.security())
        return LoadedPopulation(key, imported, trained)
    finally:
        platform.close()


def access_token(port: int, key: ECKey) -> str:
    """A token from the server's own token endpoint, as a requesting payer gets one."""
    token_url = f"http://127.0.0.1:{port}/auth/token"
    form = token_form(key, _REQUESTER_ID, token_url, MEMBER_MATCH_SCOPE)
    response = httpx.post(token_url, data=form, timeout=10, trust_env=False)
    response.raise_for_status()
    return str(response.json()["access_token"])


# -- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_LIFTED_MEMBER_MATCH_RATE = orjson.dumps(
    {"POST /fhir/Patient/$member-match": {"per_minute": 60_000_000, "burst": 1_000_000}}
).decode()


def server_env(data_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PAYERBRIDGE_DATA_DIR", "PAYERBRIDGE_CONFIG_FILE")
    }
    env.update(
        PAYERBRIDGE_DATABASE_URL=_database_url(data_dir),
        # The bench resends the same demographics; the mm-7 guard must not answer instead.
        PAYERBRIDGE_MEMBER_MATCH_MAX_CARDS="1000000",
        PAYERBRIDGE_LOG_LEVEL="WARNING",
        # One token for the whole run: a renewal inside a timed loop would be measured.
        PAYERBRIDGE_ACCESS_TOKEN_SECONDS="3600",
        # The bench is one client calling one operation as fast as it can, on purpose.
        PAYERBRIDGE_RATE_LIMIT_PER_SECOND="0",
        # $member-match's own rate (ADR 0025) raised out of the way but kept on: the
        # server leases from the shared bucket as it would under a client's real limit.
        PAYERBRIDGE_RATE_LIMITS=_LIFTED_MEMBER_MATCH_RATE,
    )
    return env


@contextmanager
def _running(
    command: list[str], env: dict[str, str], log_path: Path, *, startup_seconds: float
) -> Iterator[int]:
    """A server process (``command`` plus ``--port``) on a free loopback port; its port.

    Stopped (terminate, then kill if it lingers) however the block ends.
    """
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, str(port)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            wait_healthy(process, f"http://127.0.0.1:{port}", log_path, startup_seconds)
            yield port
        finally:
            stop_process(process)


def _running_server(data_dir: Path, *, startup_seconds: float) -> AbstractContextManager[int]:
    """One ``payerbridge serve`` process (SQLite in ``data_dir``, no workflow worker)."""
    command = [
        sys.executable,
        "-m",
        "payerbridge",
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--no-workers",
        "--port",
    ]
    return _running(
        command, server_env(data_dir), data_dir / "server.log", startup_seconds=startup_seconds
    )


def _running_bare(data_dir: Path, *, startup_seconds: float) -> AbstractContextManager[int]:
    """The bare endpoint of ``bench.bare_endpoint``, for reference."""
    command = [sys.executable, "-m", "payerbridge_tools.bench.bare_endpoint"]
    return _running(
        command, server_env(data_dir), data_dir / "bare.log", startup_seconds=startup_seconds
    )


def wait_healthy(
    process: subprocess.Popen[bytes], base_url: str, log_path: Path, seconds: float
) -> None:
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base_url, timeout=1, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the bench server exited early (code {process.returncode}):\n{_tail(log_path)}"
                )
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"the bench server was not healthy within {seconds:g}s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 20) -> str:
    """The end of the server's log (its logs carry no member data, see payerbridge.logging)."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- requests --------------------------------------------------------------------------------


def request_bodies(data: IdentitySet, requests: Sequence[int]) -> list[bytes]:
    """Each request's Parameters, serialised before any clock starts."""
    bodies = []
    for j in requests:
        patient, coverage = data.request_resources(j)
        bodies.append(
            orjson.dumps(
                {
                    "resourceType": "Parameters",
                    "parameter": [
                        {"name": "MemberPatient", "resource": patient},
                        {"name": "CoverageToMatch", "resource": coverage},
                    ],
                }
            )
        )
    return bodies


@dataclass
class _Tally:
    """Answers by status; anything but 200/422 (or no response at all) is an error."""

    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # exception class -> count

    def send(self, client: httpx.Client, body: bytes) -> None:
        try:
            status = client.post(_MEMBER_MATCH, content=body).status_code
        except httpx.HTTPError as exc:
            self.failures[type(exc).__name__] += 1
        else:
            self.statuses[status] += 1

    def merge(self, other: _Tally) -> None:
        self.statuses.update(other.statuses)
        self.failures.update(other.failures)

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s not in _ANSWERS) + sum(
            self.failures.values()
        )

    def error_text(self) -> str:
        parts = [f"HTTP {s} x{n}" for s, n in sorted(self.statuses.items()) if s not in _ANSWERS]
        parts += [f"{name} x{n}" for name, n in sorted(self.failures.items())]
        return ", ".join(parts)


def _client(base_url: str, token: str, timeout: float) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        timeout=timeout,
        trust_env=False,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/fhir+json",
            "Accept": "application/fhir+json",
        },
    )


def _sequential(client: httpx.Client, bodies: Sequence[bytes], tally: _Tally) -> list[float]:
    """Each body once, one after another on one connection: milliseconds per call."""
    timings = []
    for body in bodies:
        started = time.perf_counter()
        tally.send(client, body)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def wire_requests(port: int, token: str | None, bodies: Sequence[bytes]) -> list[bytes]:
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return [
        build_request("POST", _MEMBER_MATCH, host=f"127.0.0.1:{port}", headers=headers, body=body)
        for body in bodies
    ]


def _throughput(
    port: int,
    wire: Sequence[bytes],
    count: int,
    connections: int,
    tally: _Tally,
    *,
    repeats: int = _THROUGHPUT_REPEATS,
) -> float:
    """Requests per second over ``connections`` keep-alive connections: the median of
    ``repeats`` runs of ``count`` requests, after one warm-up pass on each (not counted)."""
    run_load("127.0.0.1", port, wire, count=connections * 4, connections=connections)
    rates = []
    for _ in range(repeats):
        result = run_load("127.0.0.1", port, wire, count=count, connections=connections)
        tally.statuses.update(result.statuses)
        tally.failures.update(result.failures)
        rates.append(result.per_second)
    return statistics.median(rates)


def _percentile(sorted_ms: Sequence[float], q: int) -> float:
    """The ``q``-th percentile (inclusive method; one value is its own percentile)."""
    if len(sorted_ms) == 1:
        return sorted_ms[0]
    return statistics.quantiles(sorted_ms, n=100, method="inclusive")[q - 1]


# -- the probe -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpMemberMatchLatency:
    """``MemberMatchLatency`` against a real server process (see the module docstring).

    ``warmup`` requests are sent first and not counted (imports, caches, the
    connection); ``throughput_requests`` are then sent over ``connections``
    keep-alive connections at once by ``bench.loadgen``, against the server and then against
    ``bench.bare_endpoint`` for reference. ``progress`` receives one line per stage (no
    member data).
    """

    warmup: int = 200
    throughput_requests: int = 10_000
    connections: int = 8
    timeout_seconds: float = 60.0
    startup_seconds: float = 120.0
    progress: Callable[[str], None] | None = None

    def _say(self, message: str) -> None:
        logger.info("bench identity online", extra={"stage": message})
        if self.progress is not None:
            self.progress(message)

    def __call__(self, data: IdentitySet, requests: Sequence[int]) -> OnlineLatency:
        if not requests:
            raise ValueError("the online probe needs at least one request")
        bodies = request_bodies(data, requests)
        with tempfile.TemporaryDirectory(prefix="payerbridge-bench-online-") as tmp:
            data_dir = Path(tmp)
            started = time.perf_counter()
            path = data_dir / "members.ndjson"
            lines = write_population(data, path)
            written = time.perf_counter() - started
            self._say(f"online: wrote {lines:,} NDJSON lines in {written:.1f}s; importing")
            loaded = load_population(data_dir, path)
            path.unlink()
            self._say(
                f"online: imported and indexed {data.member_count:,} members in "
                f"{loaded.import_seconds:.1f}s, trained in {loaded.train_seconds:.1f}s; "
                "starting the server"
            )
            with _running_server(data_dir, startup_seconds=self.startup_seconds) as port:
                token = access_token(port, loaded.key)
                timings, per_second, tally = self._measure(port, token, bodies)
            self._say("online: the same load against a bare FastAPI endpoint, for reference")
            with _running_bare(data_dir, startup_seconds=self.startup_seconds) as port:
                bare = _Tally()
                bare_per_second = _throughput(
                    port,
                    wire_requests(port, None, bodies),
                    self.throughput_requests,
                    self.connections,
                    bare,
                )
        ordered = sorted(timings)
        return OnlineLatency(
            members=data.member_count,
            requests=len(timings),
            p50_ms=statistics.median(ordered),
            p99_ms=_percentile(ordered, 99),
            per_second=per_second,
            bare_per_second=bare_per_second if not bare.errors else None,
            note=self._note(tally),
            import_seconds=loaded.import_seconds,
            train_seconds=loaded.train_seconds,
        )

    def _measure(
        self, port: int, token: str, bodies: Sequence[bytes]
    ) -> tuple[list[float], float, _Tally]:
        tally = _Tally()
        with _client(f"http://127.0.0.1:{port}", token, self.timeout_seconds) as client:
            self._say(f"online: {self.warmup:,} warm-up requests")
            _sequential(
                client, list(itertools.islice(itertools.cycle(bodies), self.warmup)), _Tally()
            )
            self._say(f"online: {len(bodies):,} timed requests, one connection")
            timings = _sequential(client, bodies, tally)
        self._say(
            f"online: {self.throughput_requests:,} requests over {self.connections} connections"
        )
        per_second = _throughput(
            port,
            wire_requests(port, token, bodies),
            self.throughput_requests,
            self.connections,
            tally,
        )
        return timings, per_second, tally

    def _note(self, tally: _Tally) -> str:
        matched, unmatched = tally.statuses[200], tally.statuses[422]
        note = (
            "latency: client wall time over loopback, one keep-alive connection, sequential "
            f"(an upper bound on server time), after {self.warmup:,} warm-up requests; "
            f"requests/s: median of {_THROUGHPUT_REPEATS} runs of {self.throughput_requests:,} "
            f"requests over {self.connections} keep-alive connections (bench.loadgen); one "
            f"server process, SQLite; answers 200 x{matched:,}, "
            f"422 x{unmatched:,}"
        )
        if tally.errors:
            note += f"; ERRORS: {tally.errors:,} ({tally.error_text()})"
        return note
