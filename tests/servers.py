"""Real payerbridge server processes for end-to-end tests."""

from __future__ import annotations

import atexit
import os
import random
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import httpx
import orjson
from joserfc.jwk import ECKey

from payerbridge.net.transport import verified_tls
from payerbridge.routing.model import DEFAULT_PARTNER_SCOPE
from payerbridge.security.model import EXCHANGES_SCOPE, MEMBER_MATCH_SCOPE, OPERATOR_SCOPE
from tests.processes import ForkedProcess, run_forked

__all__ = [
    "ALL_SCOPES",
    "PARTNER_SCOPES",
    "REQUESTER_SCOPES",
    "ServerProcess",
    "new_signing_key",
    "public_jwk",
    "free_port",
    "free_port_run",
    "migrated_sqlite",
    "new_key",
    "probe",
    "run_cli",
    "start_server",
    "start_worker",
]


# A requesting payer's scopes (the FHIR API), a partner payerbridge's (what it asks us
# for), and a test client's that may do everything.
REQUESTER_SCOPES = f"system/*.rs {MEMBER_MATCH_SCOPE}"
PARTNER_SCOPES = DEFAULT_PARTNER_SCOPE
ALL_SCOPES = f"{REQUESTER_SCOPES} {EXCHANGES_SCOPE} {OPERATOR_SCOPE}"


LOOPBACK_NETWORKS = '["127.0.0.0/8", "::1/128"]'  # where the tests' partners listen


def new_signing_key(curve: str = "P-384") -> ECKey:
    """A client's private key, named by its thumbprint."""
    key = ECKey.generate_key(curve, private=True)
    return ECKey.import_key(key.as_dict(private=True), {"kid": key.thumbprint()})


def public_jwk(key: Any) -> dict[str, Any]:
    return {**key.as_dict(private=False), "kid": key.kid}


def new_key() -> dict[str, str]:
    """Headers with a fresh Idempotency-Key, as POST /exchanges requires."""
    return {"Idempotency-Key": str(uuid.uuid4())}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    """The lowest port Linux hands out to outbound connections (32768 by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_run(count: int) -> int:
    """The first of ``count`` consecutive free ports (the sandbox puts partners at base, base+1).

    The run is taken below the ephemeral range, each test worker in a band of its own: a port
    the OS gives out (``free_port()``, any client's local port) could otherwise be taken by
    another test between this check and the moment the sandbox binds it, which can be a
    minute later (the demo generates its data first). ``make test`` runs the SQLite and
    PostgreSQL passes side by side, each with its workers ``gw0``...: each pass has half
    the range.
    """
    low, high = 10_000, _ephemeral_low()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    workers = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), 1)
    postgres = os.environ.get("PAYERBRIDGE_TEST_BACKEND", "sqlite") == "postgres"
    band = (high - low) // (2 * workers)
    index = (int(worker) % workers if worker.isdigit() else 0) + (workers if postgres else 0)
    first = low + index * band
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(first, first + band - count)
        if all(_bindable(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no run of {count} free ports in {first}..{first + band}")


def run_cli(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    interpreter: bool = False,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """A ``payerbridge`` command run to its end, forked (tests/processes.py) or, with
    ``interpreter``, as ``python -m payerbridge`` in an interpreter of its own
    (``input``: what it reads on its standard input)."""
    # Wide enough that the CLI's usage errors never wrap a path (a worker's tmp paths are
    # longer than a serial run's).
    full_env = {**os.environ, "COLUMNS": "1000", **(env or {})}
    if not interpreter:
        with tempfile.TemporaryDirectory(prefix="pb-cli-") as output:
            return run_forked(
                args, env=full_env, output_dir=Path(output), timeout=timeout, input=input
            )
    return subprocess.run(
        [sys.executable, "-m", "payerbridge", *args],
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


@dataclass
class ServerProcess:
    data_dir: Path
    port: int
    env: dict[str, str]
    process: ForkedProcess
    log_path: Path
    credential: str | None = None  # an access token of a registered client, once issued
    tls_ca: Path | None = None  # served over HTTPS with a certificate from this CA
    stopping: bool = False

    @property
    def verify(self) -> ssl.SSLContext:
        """The TLS context its clients verify it with: one per CA, as the product keeps
        one (``verified_tls``): each new client's context read the whole CA bundle."""
        return verified_tls() if self.tls_ca is None else _trusting(self.tls_ca)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls_ca is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def fhir_base(self) -> str:
        return f"{self.base_url}/fhir"

    def client(self) -> httpx.Client:
        """An HTTP client with the access token of the client ``authorize`` registered
        (a ``tester`` with every scope when no test did)."""
        if self.credential is None:
            self.authorize("tester", scope=ALL_SCOPES)
        return self.client_with(self.credential)

    def client_with(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, timeout=30, headers=headers, verify=self.verify)

    def anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, verify=self.verify)

    def register_client(
        self,
        client_id: str = "newplan",
        *,
        npi: str = "1234567893",
        name: str = "New Plan",
        scope: str = REQUESTER_SCOPES,
        jwks: dict[str, Any] | None = None,
    ) -> str:
        """Register a SMART client (with a new key pair unless ``jwks`` is given) and
        return an access token for it with its whole ``scope``."""
        from payerbridge.bootstrap import utcnow
        from payerbridge.security.model import AddClient, ClientKeys
        from payerbridge.security.registration import smart_client
        from payerbridge.security.registry import add_client
        from payerbridge.types import ClientId

        if jwks is None:
            jwks = {"keys": [public_jwk(new_signing_key())]}
        with self.platform() as platform:
            if platform.clients.get(ClientId(client_id)) is None:
                add_client(
                    AddClient(
                        smart_client(client_id, name, npi, scope, ClientKeys(jwks=jwks)), "test"
                    ),
                    platform.units.security(),
                )
            return platform.tokens.issue(
                ClientId(client_id), scope, now=utcnow(), actor="test"
            ).access_token

    def trust(self, other: ServerProcess, client_id: str, *, npi: str) -> ServerProcess:
        """Register the payerbridge instance ``other`` as a client of this one, with the
        key ``other`` signs its assertions with (as an operator would from its
        ``/auth/client-jwks``): ``other`` then gets tokens here by itself."""
        jwks = httpx.get(f"{other.base_url}/auth/client-jwks", timeout=10).json()
        self.register_client(client_id, npi=npi, scope=PARTNER_SCOPES, jwks=jwks)
        return self

    @contextmanager
    def platform(self) -> Iterator[Any]:
        """The instance's stores, opened from this test process (to check what it holds)."""
        from payerbridge.bootstrap import build_platform
        from payerbridge.config import load_settings

        platform = build_platform(
            load_settings(
                data_dir=self.data_dir,
                database_url=self.env.get("PAYERBRIDGE_DATABASE_URL") or None,
                # Its tokens' issuer: its own address, or the one it was given (a proxy's).
                public_base_url=self.env.get("PAYERBRIDGE_PUBLIC_BASE_URL") or self.base_url,
                access_token_seconds=3600,
            )
        )
        try:
            yield platform
        finally:
            platform.close()

    def authorize(
        self, client_id: str = "newplan", *, npi: str = "1234567893", scope: str = ALL_SCOPES
    ) -> ServerProcess:
        """Register a client and make ``client()`` use its access token from now on."""
        self.credential = self.register_client(client_id, npi=npi, scope=scope)
        return self

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli([*args, "--data-dir", str(self.data_dir)], env=self.env, input=input)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged(self, since: int, *needles: str, lines: int = 1, timeout: float = 10.0) -> str:
        """The log written after offset ``since``, once it holds ``lines`` lines with every
        needle. A request's line is written after its answer is sent, so a test reading
        the log as soon as it has the answer can come before the line does."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()[since:]
            found = [line for line in log.splitlines() if all(n in line for n in needles)]
            if len(found) >= lines or time.monotonic() > deadline:
                return log
            time.sleep(0.05)

    def begin_stop(self) -> None:
        """Ask the server to stop (SIGTERM, once: a second one makes uvicorn skip its
        shutdown), without waiting: several servers stop side by side."""
        if self.process.poll() is None and not self.stopping:
            self.process.terminate()
            self.stopping = True

    def stop(self) -> None:
        self.begin_stop()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# The guessing operations' own rates (ADR 0025) lifted for the servers tests start, as
# the benches do: tests that send many requests are not about the limits; those that are
# set PAYERBRIDGE_RATE_LIMITS themselves.
LIFTED_GUESSING_RATES = orjson.dumps(
    {
        "POST /fhir/Patient/$member-match": {"per_minute": 600_000, "burst": 10_000},
        "POST /fhir/Group/$bulk-member-match": {"per_minute": 600_000, "burst": 10_000},
    }
).decode()


def start_server(
    data_dir: Path,
    *,
    env: dict[str, str],
    import_files: list[Path],
    args: tuple[str, ...] = (),
    tls_ca: Path | None = None,
    port: int | None = None,
    log_name: str = "server.log",
) -> ServerProcess:
    """A ``payerbridge serve`` process on ``data_dir`` (``log_name``: its log there, for a
    second process on the same instance)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    migrated_sqlite(data_dir, env)
    full_env = {
        **os.environ,
        "PAYERBRIDGE_ENVIRONMENT": "test",
        "PAYERBRIDGE_RATE_LIMITS": LIFTED_GUESSING_RATES,
        # The partners, key sets and webhook receivers of the tests listen on this machine
        # (ADR 0027); a test of production behaviour passes "[]".
        "PAYERBRIDGE_EGRESS_ALLOWED_NETWORKS": LOOPBACK_NETWORKS,
        # Bulk jobs and onboardings picked up as soon as exchanges: the tests wait on them.
        "PAYERBRIDGE_BULK_QUEUE_POLLING_SECONDS": "0.25",
        **env,
    }
    for path in import_files:
        seed(data_dir, full_env, path)
    if port is not None:
        return _serve(data_dir, full_env, args, tls_ca, port, log_name)
    # A free port found here can be taken by another test's process (the suite runs on
    # several workers) before the server binds it: then another port, a few times.
    for attempt in range(3):
        try:
            return _serve(data_dir, dict(full_env), args, tls_ca, free_port(), log_name)
        except PortTaken:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def migrated_sqlite(data_dir: Path, env: Mapping[str, str]) -> None:
    """Give a new data dir on SQLite (no ``PAYERBRIDGE_DATABASE_URL``) a copy of a
    database migrated once per test process, as PostgreSQL's instances get a copy of a
    migrated template (``tests/conftest.py``): running every migration on a new database
    cost each server start and each platform opened in a test about half a second of CPU.
    An existing database is left alone; the migrations themselves are tested from an empty
    data dir (``tests/integration/test_migrations.py``, ``payerbridge db upgrade``)."""
    database = data_dir / "payerbridge.db"
    if env.get("PAYERBRIDGE_DATABASE_URL") or database.exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_sqlite_template(), database)


@cache
def _sqlite_template() -> Path:
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings

    folder = Path(tempfile.mkdtemp(prefix="pbtest-sqlite-template-"))
    atexit.register(shutil.rmtree, folder, True)
    build_platform(load_settings(data_dir=folder, database_url=None)).close()
    database = folder / "payerbridge.db"
    with closing(sqlite3.connect(database, isolation_level=None)) as connection:
        # Its data key is wrapped under the key-encryption key of the template's data dir:
        # each copy makes its own at its first start (ADR 0039).
        connection.execute("DELETE FROM data_keys")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in the file a copy takes
    return database


def seed(data_dir: Path, env: dict[str, str], path: Path) -> None:
    """Load one file of member data as ``payerbridge import`` does (its own commit and
    indexing), in this process: a CLI process per file cost a second and a half of CPU.
    The import command itself is tested through the CLI (tests/e2e/test_cli.py)."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings

    ours = {k: v for k, v in env.items() if k.startswith("PAYERBRIDGE_")}
    saved = {k: os.environ.get(k) for k in ours}
    os.environ.update(ours)  # the instance's settings, as its CLI would read them
    try:
        platform = build_platform(load_settings(data_dir=data_dir))
        try:
            reports = platform.import_member_files([path], progress=lambda _path, _size: None)
        finally:
            platform.close()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    rejected = [(r.path, r.errors) for r in reports if not r.accepted]
    assert not rejected, rejected


@cache
def _trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def probe(url: str, *, timeout: float) -> httpx.Response:
    """One GET, as the tests poll a process until it answers: with the process's one TLS
    context, where a new client's own read the whole CA bundle (60 ms of CPU a poll)."""
    return httpx.get(url, timeout=timeout, verify=verified_tls())


class PortTaken(RuntimeError):
    """The server could not bind the port it was given."""


def _serve(
    data_dir: Path,
    full_env: dict[str, str],
    args: tuple[str, ...],
    tls_ca: Path | None,
    port: int,
    log_name: str,
) -> ServerProcess:
    # Our tokens' issuer: the URL the tests reach the server by (and the CLI agrees).
    scheme = "https" if tls_ca is not None else "http"
    full_env.setdefault("PAYERBRIDGE_PUBLIC_BASE_URL", f"{scheme}://127.0.0.1:{port}")
    log_path = data_dir / log_name
    log_path.write_bytes(b"")
    process = ForkedProcess(
        ["serve", "--data-dir", str(data_dir), "--port", str(port), *args],
        env=full_env,
        stdout=log_path,
    )
    server = ServerProcess(data_dir, port, full_env, process, log_path, tls_ca=tls_ca)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _exited(server, port)
        try:
            health = httpx.get(f"{server.base_url}/healthz", timeout=1, verify=server.verify)
            if health.status_code == 200:
                return _bound(server, port)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not become healthy:\n{server.log()}")


def _bound(server: ServerProcess, port: int) -> ServerProcess:
    """``server`` once it holds its port. A health answer can come from another test's
    server on a port ours is about to fail to bind (uvicorn binds after its startup):
    ours then talked to a stranger, whose tokens are not ours. Ready when it says it runs,
    or is still up a moment later without having said the port was taken."""
    settle = time.monotonic() + 2
    while time.monotonic() < settle:
        log = server.log().lower()
        if "uvicorn running on" in log:
            return server
        if "address already in use" in log or server.process.poll() is not None:
            _exited(server, port)
        time.sleep(0.05)
    return server


def _exited(server: ServerProcess, port: int) -> NoReturn:
    """``server`` stopped, failed for a port another process took (another, then) or for
    what its log says."""
    server.stop()
    if "address already in use" in server.log().lower():
        raise PortTaken(f"port {port} was taken")
    raise RuntimeError(f"server exited early:\n{server.log()}")


def start_worker(
    data_dir: Path, *, env: dict[str, str], worker_id: str, log_path: Path
) -> ForkedProcess:
    """A ``payerbridge worker`` process (no HTTP) on the instance in ``data_dir``."""
    full_env = {
        **os.environ,
        "PAYERBRIDGE_ENVIRONMENT": "test",
        "PAYERBRIDGE_EGRESS_ALLOWED_NETWORKS": LOOPBACK_NETWORKS,
        "PAYERBRIDGE_BULK_QUEUE_POLLING_SECONDS": "0.25",  # as start_server's
        **env,
    }
    return ForkedProcess(
        ["worker", "--data-dir", str(data_dir), "--worker-id", worker_id],
        env=full_env,
        stdout=log_path,
    )
