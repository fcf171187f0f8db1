"""Shared fixtures: the database backend under test and real server processes.

``PAYERBRIDGE_TEST_BACKEND=postgres`` runs every test that touches a database against
PostgreSQL (``PAYERBRIDGE_TEST_DATABASE_URL``, default the local ``test`` database):
each payer instance gets a fresh database of its own, dropped afterwards. When CI
asks for PostgreSQL and it is unreachable, the run fails instead of skipping.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from hypothesis import settings

from tests.servers import ServerProcess, free_port, migrated_sqlite, probe, start_server

if TYPE_CHECKING:
    from payerbridge.bootstrap import Platform

# The 20 slowest tests and the budget of PAYERBRIDGE_TEST_BUDGET_SECONDS, and the longest
# modules handed to the workers first (ADR 0028).
pytest_plugins = ["tests.budget", "tests.ordering"]

# No example has a deadline: the suite runs its unit tests beside server processes on two
# cores, where hypothesis's default 200 ms per example failed a test that was not slow
# (speed is the benchmarks' to measure, not a test's).
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

BACKEND = os.environ.get("PAYERBRIDGE_TEST_BACKEND", "sqlite")
ADMIN_URL = os.environ.get(
    "PAYERBRIDGE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _admin_connect():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)


@pytest.fixture(scope="session", autouse=True)
def _postgres_reachable() -> None:
    if BACKEND != "postgres":
        return
    try:
        with _admin_connect() as connection:
            connection.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001
        pytest.exit(f"PostgreSQL requested but unreachable at {ADMIN_URL}: {exc}", returncode=3)


class _Databases:
    """Fresh PostgreSQL databases, one per payer instance, dropped by ``drop``; on SQLite
    each instance's data dir holds its own and this gives no settings.

    Each is a copy of a template migrated once per test worker (``empty``: a database
    with no schema, for the tests of the migrations): migrating a new database, ours and
    DBOS's schemas, cost every server start about two seconds."""

    template: str | None = None  # this test worker's, made at its first database

    def __init__(self) -> None:
        self.created: list[str] = []

    def make(self, *, empty: bool = False) -> dict[str, str]:
        if BACKEND != "postgres":
            return {}
        name = f"pbtest_{uuid.uuid4().hex[:12]}"
        template = "" if empty else f' TEMPLATE "{_Databases.migrated_template()}"'
        with _admin_connect() as connection:
            connection.execute(f'CREATE DATABASE "{name}"{template}')
        self.created.append(name)
        # A server, its worker and the suite's other workers share the server's 100
        # connections: a few per process is plenty for a test's load.
        return {
            "PAYERBRIDGE_DATABASE_URL": _database_url(name),
            "PAYERBRIDGE_DATABASE_MAX_CONNECTIONS": "4",
        }

    def drop(self) -> None:
        if self.created:
            with _admin_connect() as connection:
                for name in self.created:
                    connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @classmethod
    def migrated_template(cls) -> str:
        if cls.template is None:
            import psycopg
            from dbos import DBOS

            from payerbridge.bootstrap import build_platform
            from payerbridge.config import load_settings

            name = f"pbtest_template_{uuid.uuid4().hex[:12]}"
            with _admin_connect() as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
            with tempfile.TemporaryDirectory() as data_dir:
                settings = load_settings(data_dir=Path(data_dir), database_url=_database_url(name))
                build_platform(settings).close()  # our migrations, as `db upgrade` runs them
                DBOS.migrate(settings.sqlalchemy_url)  # DBOS's, as its first launch would
            with psycopg.connect(_database_url(name), autocommit=True) as template:
                # Its data key is wrapped under a key-encryption key left in the data dir
                # just removed: each copy makes its own at its first start (ADR 0039).
                template.execute("DELETE FROM data_keys")
            with _admin_connect() as connection:  # a template is copied with nobody on it
                connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )
            cls.template = name
        return cls.template


def _database_url(name: str) -> str:
    return f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"


@pytest.fixture(scope="session", autouse=True)
def _drop_the_template() -> Iterator[None]:
    yield
    if _Databases.template is not None:
        with _admin_connect() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{_Databases.template}" WITH (FORCE)')


@pytest.fixture
def database_env() -> Iterator[Callable[..., dict[str, str]]]:
    """A factory of environments, each pointing one payer instance at its own database."""
    databases = _Databases()
    yield databases.make
    databases.drop()


@contextmanager
def opened_platform(data_dir: Path, env: dict[str, str]) -> Iterator[Platform]:
    """A payer instance in process on ``data_dir``, with the default settings and the
    database ``env`` names (``database_env()``'s), closed however the block ends."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings

    migrated_sqlite(data_dir, env)
    platform = build_platform(
        load_settings(data_dir=data_dir, database_url=env.get("PAYERBRIDGE_DATABASE_URL"))
    )
    try:
        yield platform
    finally:
        platform.close()


@pytest.fixture
def platform(tmp_path: Path, database_env: Callable[..., dict[str, str]]) -> Iterator[Platform]:
    """One payer instance in process, with the default settings, on the backend under
    test (a module that needs other settings or data defines its own ``platform``)."""
    with opened_platform(tmp_path, database_env()) as platform:
        yield platform


@pytest.fixture(scope="module")
def module_database_env() -> Iterator[Callable[..., dict[str, str]]]:
    """As ``database_env``, for a database a module's tests share."""
    databases = _Databases()
    yield databases.make
    databases.drop()


class _Servers:
    """Starts real ``payerbridge serve`` processes under ``root``; ``stop`` stops them all."""

    def __init__(self, root: Path, databases: _Databases) -> None:
        self.root, self.databases = root, databases
        self.started: list[ServerProcess] = []

    def start(
        self,
        name: str,
        *,
        env: dict[str, str] | None = None,
        import_files: list[Path] | None = None,
        args: tuple[str, ...] = (),
        tls_ca: Path | None = None,
        port: int | None = None,
    ) -> ServerProcess:
        process = start_server(
            self.root / name,
            env={**self.databases.make(), **(env or {})},
            import_files=import_files or [],
            args=args,
            tls_ca=tls_ca,
            port=port,
        )
        self.started.append(process)
        return process

    def stop(self) -> None:
        for process in self.started:
            process.begin_stop()
        for process in self.started:
            process.stop()
        self.databases.drop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real ``payerbridge serve`` processes; all are stopped at teardown."""
    servers = _Servers(tmp_path, _Databases())
    yield servers.start
    servers.stop()


@pytest.fixture(scope="module")
def module_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ServerProcess]]:
    """As ``server``, for servers a module's tests share (each test with a client, a
    member or a Group of its own, so that none sees another's): one start, not one per
    test."""
    servers = _Servers(tmp_path_factory.mktemp("module"), _Databases())
    yield servers.start
    servers.stop()


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[Callable[..., tuple[str, Path]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(upstream: str, **faults: float) -> tuple[str, Path]:
        port, log = free_port(), tmp_path / f"proxy-{len(started)}.jsonl"
        args = [f"--{name}={value}" for name, value in faults.items()]
        started.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.faultproxy",
                    "--port",
                    str(port),
                    "--upstream",
                    upstream,
                    "--log",
                    str(log),
                    *args,
                ],
                stderr=subprocess.DEVNULL,
            )
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                probe(f"http://127.0.0.1:{port}/healthz", timeout=10)
                return f"http://127.0.0.1:{port}/fhir", log
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the fault proxy did not start")

    yield start
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:  # calls held open by a hang fault
            process.kill()
            process.wait()
