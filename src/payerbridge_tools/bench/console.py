"""``payerbridge bench console``: how fast the operators' pages answer over a plan's
months of operation, the API's and the console's, on SQLite and PostgreSQL.

Per backend (SQLite in a temporary data dir, or a fresh PostgreSQL database dropped after):

1. ``bench.console_data`` loads the members (imported, indexed, a model trained) and the
   exchanges (submitted, moved, audited, by the product's own use cases);
2. one ``payerbridge serve --no-workers`` process serves them (no worker: nothing moves
   while pages are read); ``$member-match`` requests about the members, sent to it as a
   requesting payer sends them, open the identity review cases the queue shows;
3. each page is asked for ``repeat`` times one after another on one keep-alive connection,
   after a few not counted, as the operator it is for: the API with an operator's (or an
   auditor's) access token, the console signed in through its own form. A page about one
   thing (an exchange, a case, a partner) asks about another each time.

The time is the client's wall time over loopback: the server's own time plus the round
trip. Every answer must be 200; another status stops the run, naming the page. The target
(issue 53) is a p95 under 300 ms per page. Nothing about the people is logged or printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import orjson
from joserfc.jwk import ECKey

from payerbridge.security.model import AUDITOR_SCOPE, MEMBER_MATCH_SCOPE, OPERATOR_SCOPE
from payerbridge_tools.bench.console_data import Fleet, load_exchanges, population_file, utc_now
from payerbridge_tools.bench.console_pages import (
    AUDITOR,
    OPS,
    PASSWORD,
    REQUESTER,
    ROLES,
    TARGET_MS,
    PageTime,
    pages,
    sessions,
    time_page,
    token,
)
from payerbridge_tools.bench.identity_data import IdentitySet, generate_identity_set
from payerbridge_tools.bench.machine import machine_lines

if TYPE_CHECKING:
    from payerbridge.bootstrap import Platform

__all__ = ["TARGET_MS", "ConsoleRun", "PageTime", "report_markdown", "run_console"]


@dataclass
class ConsoleRun:
    backend: str
    members: int
    exchanges: int
    review_cases: int = 0
    load_seconds: dict[str, float] = field(default_factory=dict)
    # The machine's load average (1, 5, 15 min) when the pages had been timed: a busy machine
    # slows every page, and a report should say how busy it was.
    busy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pages: list[PageTime] = field(default_factory=list)


def run_console(
    *,
    members: int,
    exchanges: int,
    backends: Sequence[str],
    admin_url: str | None,
    repeat: int,
    match_requests: int,
    seed: int = 42,
    progress: Callable[[str], None] = lambda _: None,
) -> list[ConsoleRun]:
    data = generate_identity_set(members, seed=seed, requests=match_requests)
    runs = []
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="pb-bench-console-") as tmp:
            runs.append(
                _one_backend(backend, Path(tmp), data, exchanges, repeat, admin_url or "", progress)
            )
    return runs


def _one_backend(
    backend: str,
    root: Path,
    data: IdentitySet,
    exchanges: int,
    repeat: int,
    admin_url: str,
    progress: Callable[[str], None],
) -> ConsoleRun:
    run = ConsoleRun(_NAMES[backend], data.member_count, exchanges)
    with _database(backend, root, admin_url) as url:
        keys, fleet = _load(root, url, data, exchanges, run, progress)
        with _serving(root, url) as base:
            run.review_cases = _open_reviews(base, keys[REQUESTER], data, run, progress)
            progress(f"{run.backend}: {run.review_cases:,} review cases open; timing pages")
            with sessions(base, keys) as signed_in:
                run.pages = [time_page(signed_in, page, repeat) for page in pages(signed_in, fleet)]
                run.busy = os.getloadavg()  # over the timing's last minute
    return run


_NAMES = {"sqlite": "SQLite (WAL)", "postgres": "PostgreSQL"}


@contextmanager
def _database(backend: str, data_dir: Path, admin_url: str) -> Iterator[str]:
    """SQLite in ``data_dir``, or a database of its own, dropped afterwards; named either
    way, so that an ambient PAYERBRIDGE_DATABASE_URL is never touched."""
    if backend == "sqlite":
        yield f"sqlite:///{(data_dir / 'payerbridge.db').resolve()}"
        return
    import psycopg

    name = f"pbbench_console_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _load(
    root: Path,
    url: str,
    data: IdentitySet,
    exchanges: int,
    run: ConsoleRun,
    progress: Callable[[str], None],
) -> tuple[dict[str, ECKey], Fleet]:
    """Members, model, clients, console accounts and exchanges; the clients' keys."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings
    from payerbridge.identity.service import TrainModel, train_on_members

    path = root / "members.ndjson"
    population_file(data, path)
    settings = load_settings(data_dir=root, database_url=url, log_level="WARNING")
    platform = build_platform(settings)
    try:
        started = time.perf_counter()
        report = platform.import_members(path)
        if not report.accepted:  # line numbers only: the messages may quote the data
            raise RuntimeError(f"the population was rejected: {report.error_count} lines")
        run.load_seconds["members"] = time.perf_counter() - started
        progress(
            f"{run.backend}: {data.member_count:,} members in {run.load_seconds['members']:.0f}s"
        )
        started = time.perf_counter()
        train_on_members(TrainModel(seed=42), platform.units.identity())
        run.load_seconds["training"] = time.perf_counter() - started
        keys = _clients(platform)
        _accounts(platform)
        fleet = load_exchanges(platform, data, exchanges, now=utc_now(), progress=progress)
        run.load_seconds["exchanges"] = fleet.seconds
        progress(f"{run.backend}: {exchanges:,} exchanges in {fleet.seconds:.0f}s")
        if platform.engine.dialect.name == "postgresql":  # as autovacuum would, after a load
            with platform.engine.connect() as connection:
                connection.exec_driver_sql("ANALYZE")
    finally:
        platform.close()
    return keys, fleet


def _clients(platform: Platform) -> dict[str, ECKey]:
    """The requesting payer, an operator's and an auditor's API clients, with their keys."""
    from payerbridge.security.model import AddClient, ClientKeys
    from payerbridge.security.registration import smart_client
    from payerbridge.security.registry import add_client

    scopes = {REQUESTER: MEMBER_MATCH_SCOPE, OPS: OPERATOR_SCOPE, AUDITOR: AUDITOR_SCOPE}
    keys = {}
    for client_id, scope in scopes.items():
        key = ECKey.generate_key("P-384", private=True)
        key = ECKey.import_key(key.as_dict(private=True), {"kid": key.thumbprint()})
        jwks = {"keys": [{**key.as_dict(private=False), "kid": key.kid}]}
        client = smart_client(client_id, client_id, "1234567893", scope, ClientKeys(jwks=jwks))
        add_client(AddClient(client, "bench"), platform.units.security())
        keys[client_id] = key
    return keys


def _accounts(platform: Platform) -> None:
    from payerbridge.security.model import Role
    from payerbridge.security.operator_accounts import AddOperator, add_operator

    for name, role in ROLES.items():
        asked = AddOperator(f"bench-{name}", Role(role), PASSWORD, "bench")
        add_operator(asked, platform.units.operators())


@contextmanager
def _serving(data_dir: Path, url: str) -> Iterator[str]:
    """``payerbridge serve --no-workers`` on a free port; its base URL."""
    from payerbridge_tools.bench.bulk import _free_port, _wait_healthy

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYERBRIDGE_")}
    env.update(
        PAYERBRIDGE_DATABASE_URL=url,
        PAYERBRIDGE_LOG_LEVEL="WARNING",
        PAYERBRIDGE_ACCESS_TOKEN_SECONDS="3600",
        PAYERBRIDGE_RATE_LIMIT_PER_SECOND="0",
        PAYERBRIDGE_MEMBER_MATCH_MAX_CARDS="1000000",
        PAYERBRIDGE_RATE_LIMITS='{"POST /fhir/Patient/$member-match": '
        '{"per_minute": 0, "burst": 1}}',
    )
    command = [
        sys.executable,
        "-m",
        "payerbridge",
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-workers",
    ]
    log = data_dir / "server.log"
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(process, base, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _open_reviews(
    base: str, key: ECKey, data: IdentitySet, run: ConsoleRun, progress: Callable[[str], None]
) -> int:
    """Every request of ``data`` sent as ``$member-match`` (four at a time); the review
    cases they opened."""
    bearer = token(base, REQUESTER, key, MEMBER_MATCH_SCOPE)
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/fhir+json"}
    started = time.perf_counter()

    def send(share: range) -> int:
        opened = 0
        with httpx.Client(base_url=base, headers=headers, timeout=60, trust_env=False) as client:
            for j in share:
                patient, coverage = data.request_resources(j)
                body = {
                    "resourceType": "Parameters",
                    "parameter": [
                        {"name": "MemberPatient", "resource": patient},
                        {"name": "CoverageToMatch", "resource": coverage},
                    ],
                }
                answer = client.post("/fhir/Patient/$member-match", content=orjson.dumps(body))
                if answer.status_code not in (200, 422):
                    raise RuntimeError(f"$member-match answered {answer.status_code}")
                opened += answer.status_code == 422 and b"match-under-review" in answer.content
        return opened

    count = data.request_count
    with ThreadPoolExecutor(4) as pool:
        opened = sum(pool.map(send, [range(n, count, 4) for n in range(4)]))
    run.load_seconds["reviews"] = time.perf_counter() - started
    return opened


def report_markdown(runs: Sequence[ConsoleRun], *, repeat: int, note: str = "") -> str:
    lines = [
        "# Benchmark: the operators' pages",
        "",
        "Generated by `payerbridge bench console` (`src/payerbridge_tools/bench/console.py`).",
        *([note, ""] if note else []),
        *machine_lines(),
        "",
        "How it runs: the members are imported and indexed and a model trained; the exchanges",
        "are submitted and moved by the product's own use cases (`bench/console_data.py`:",
        "their ends drawn from `ENDS`, over 90 days, 5 clients and 8 old payers); then one",
        "`payerbridge serve --no-workers` process serves them, `$member-match` requests about",
        f"the members open the review cases, and each page is asked for {repeat} times in a row",
        "(after 3 not counted) as its operator asks: the API with an access token, the console",
        "signed in through its form. Times are the client's, over loopback. Target: p95 under",
        f"{TARGET_MS:.0f} ms per page.",
    ]
    for run in runs:
        loaded = ", ".join(f"{k} {v:.0f} s" for k, v in run.load_seconds.items())
        lines += [
            "",
            f"## {run.backend}: {run.members:,} members, {run.exchanges:,} exchanges, "
            f"{run.review_cases:,} open review cases",
            "",
            f"Loading: {loaded}. Load average as the pages were timed: "
            f"{', '.join(f'{n:.1f}' for n in run.busy)} (1, 5, 15 min).",
            "",
            "| surface | page | asked as | p50 ms | p95 ms | max ms | p95 < 300 ms |",
            "|---|---|---|---:|---:|---:|:-:|",
        ]
        lines += [
            f"| {p.surface} | {p.name} | `{p.example}` | {p.p50_ms:.1f} | {p.p95_ms:.1f} "
            f"| {p.max_ms:.1f} | {'yes' if p.meets_target else '**no**'} |"
            for p in run.pages
        ]
    return "\n".join(lines) + "\n"
