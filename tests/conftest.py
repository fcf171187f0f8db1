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
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import ServerProcess, free_port, start_server

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


@pytest.fixture
def database_env() -> Iterator[Callable[[], dict[str, str]]]:
    """A factory of environments, each pointing one payer instance at its own database."""
    created: list[str] = []

    def make() -> dict[str, str]:
        if BACKEND != "postgres":
            return {}
        name = f"pbtest_{uuid.uuid4().hex[:12]}"
        with _admin_connect() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        base = ADMIN_URL.rsplit("/", 1)[0]
        return {"PAYERBRIDGE_DATABASE_URL": f"{base}/{name}"}

    yield make
    if created:
        with _admin_connect() as connection:
            for name in created:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def server(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> Iterator[Callable[..., ServerProcess]]:
    """Start real ``payerbridge serve`` processes; all are stopped at teardown."""
    started: list[ServerProcess] = []

    def start(
        name: str,
        *,
        env: dict[str, str] | None = None,
        import_files: list[Path] | None = None,
        args: tuple[str, ...] = (),
        tls_ca: Path | None = None,
        port: int | None = None,
    ) -> ServerProcess:
        process = start_server(
            tmp_path / name,
            env={**database_env(), **(env or {})},
            import_files=import_files or [],
            args=args,
            tls_ca=tls_ca,
            port=port,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


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
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
                return f"http://127.0.0.1:{port}/fhir", log
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the fault proxy did not start")

    yield start
    for process in started:
        process.terminate()
        process.wait(10)
