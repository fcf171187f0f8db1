"""Real payerbridge server processes for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx

__all__ = [
    "ServerProcess",
    "free_port",
    "free_port_run",
    "new_key",
    "run_cli",
    "start_server",
    "start_worker",
]


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


def free_port_run(count: int) -> int:
    """The first of ``count`` consecutive free ports (the sandbox puts partners at base, base+1).

    ``free_port() + 1`` is not enough: Linux hands out ports of the other parity to outbound
    connections, so the next port is often some client's local port and a server cannot bind it.
    """
    for _ in range(200):
        base = free_port()
        if base + count <= 65535 and all(_bindable(base + i) for i in range(1, count)):
            return base
    raise RuntimeError(f"no run of {count} free ports")


def run_cli(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "payerbridge", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


@dataclass
class ServerProcess:
    data_dir: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: BinaryIO
    credential: str | None = None  # a registered client's bearer credential, once issued

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def fhir_base(self) -> str:
        return f"{self.base_url}/fhir"

    def client(self) -> httpx.Client:
        """An HTTP client, authenticated as the registered client once there is one."""
        headers = {"Authorization": f"Bearer {self.credential}"} if self.credential else {}
        return httpx.Client(base_url=self.base_url, timeout=30, headers=headers)

    def anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)

    def register_client(
        self, client_id: str = "newplan", *, npi: str = "1234567893", name: str = "New Plan"
    ) -> str:
        """Register a requesting payer with ``payerbridge clients add``; its credential."""
        result = self.cli("clients", "add", "--id", client_id, "--name", name, "--npi", npi)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    @contextmanager
    def platform(self) -> Iterator[Any]:
        """The instance's stores, opened from this test process (to check what it holds)."""
        from payerbridge.bootstrap import build_platform
        from payerbridge.config import load_settings

        platform = build_platform(
            load_settings(
                data_dir=self.data_dir,
                database_url=self.env.get("PAYERBRIDGE_DATABASE_URL") or None,
            )
        )
        try:
            yield platform
        finally:
            platform.close()

    def authorize(self, client_id: str = "newplan", *, npi: str = "1234567893") -> ServerProcess:
        """Register a client and make ``client()`` use its credential from now on."""
        self.credential = self.register_client(client_id, npi=npi)
        return self

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli([*args, "--data-dir", str(self.data_dir)], env=self.env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


def start_server(
    data_dir: Path, *, env: dict[str, str], import_files: list[Path], args: tuple[str, ...] = ()
) -> ServerProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "PAYERBRIDGE_ENVIRONMENT": "test", **env}
    for path in import_files:
        result = run_cli(["import", "--data-dir", str(data_dir), str(path)], env=full_env)
        assert result.returncode == 0, result.stderr
    port = free_port()
    log_path = data_dir / "server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "payerbridge",
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            *args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=full_env,
    )
    server = ServerProcess(data_dir, port, full_env, process, log_path, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not become healthy:\n{server.log()}")


def start_worker(
    data_dir: Path, *, env: dict[str, str], worker_id: str, log_path: Path
) -> subprocess.Popen[bytes]:
    """A ``payerbridge worker`` process (no HTTP) on the instance in ``data_dir``."""
    full_env = {**os.environ, "PAYERBRIDGE_ENVIRONMENT": "test", **env}
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "payerbridge",
                "worker",
                "--data-dir",
                str(data_dir),
                "--worker-id",
                worker_id,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
