"""The sandbox's processes and what each is told about itself: partner payers and the
platform started as ``serve`` processes in sessions of their own, each told its
organization and port (``write_environment``), registered as SMART clients of one
another, waited for and stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console

__all__ = [
    "Instance",
    "bindable",
    "err",
    "launch",
    "log_tail",
    "our_client_id",
    "our_key_set",
    "out",
    "register_client",
    "spawn",
    "stop",
    "wait_healthy",
    "write_environment",
]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

_ENVIRONMENT_MARK = "# Written by payerbridge demo"


@dataclass
class Instance:
    """A process of the sandbox, with what started it (``argv``, ``env``: the
    environment it was given; None: ours) so that it can be started again."""

    name: str
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def poll(self) -> int | None:
        return self.process.poll()

    def pid(self) -> int:
        return self.process.pid

    def terminate(self) -> None:
        stop([self])

    def restart(self) -> None:
        self.process = launch(self.argv, self.data_dir, self.env)


def launch(argv: list[str], data_dir: Path, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    """Start a process of the sandbox in a session of its own (so that only we stop it),
    its output appended to ``data_dir/server.log``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "server.log").open("ab") as log:
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def spawn(
    name: str, data_dir: Path, port: int, env: dict[str, str], *, embedded: bool = False
) -> Instance:
    """Start ``serve``; ``embedded`` instances ignore PAYERBRIDGE_DATABASE_URL (SQLite).
    An instance given its organization (``PAYERBRIDGE_ORG_NAME`` and ``_NPI``) has it
    written in its data directory with its port, so commands given that directory act
    as that payer."""
    if "PAYERBRIDGE_ORG_NAME" in env and "PAYERBRIDGE_ORG_NPI" in env:
        org = (env["PAYERBRIDGE_ORG_NAME"], env["PAYERBRIDGE_ORG_NPI"])
        write_environment(data_dir, org, port)
    base_env = dict(os.environ)
    if embedded:
        base_env.pop("PAYERBRIDGE_DATABASE_URL", None)
    argv = [
        sys.executable,
        "-m",
        "payerbridge",
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
    ]
    full_env = {**base_env, **env}
    return Instance(name, data_dir, port, launch(argv, data_dir, full_env), argv, full_env)


def stop(instances: list[Instance]) -> None:
    for instance in instances:
        if instance.process.poll() is None:
            instance.process.send_signal(signal.SIGTERM)
    for instance in instances:
        try:
            instance.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            instance.process.kill()


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a server's log: startup errors, never member data (nothing is loaded)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_healthy(instances: list[Instance], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    for instance in instances:
        while True:
            if instance.process.poll() is not None:
                raise RuntimeError(
                    f"{instance.name} exited; the end of {instance.data_dir}/server.log:\n"
                    + log_tail(instance.data_dir / "server.log")
                )
            try:
                if httpx.get(f"{instance.base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{instance.name} did not start; see {instance.data_dir}/server.log"
                )
            time.sleep(0.25)


def bindable(port: int) -> bool:
    """Whether a server could listen on the port now: SO_REUSEADDR, as servers set it,
    so that the TIME_WAIT of a stopped server's connections does not count as busy."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def register_client(
    data_dir: Path, client_id: str, org: tuple[str, str], scope: str, key_set: dict[str, Any]
) -> None:
    """Register a SMART client with the instance in ``data_dir``, once (its public keys
    given inline)."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings
    from payerbridge.security.model import AddClient, ClientKeys
    from payerbridge.security.registration import smart_client
    from payerbridge.security.registry import add_client
    from payerbridge.types import ClientId

    platform = build_platform(load_settings(data_dir=data_dir, database_url=None))
    try:
        if platform.clients.get(ClientId(client_id)) is None:
            add_client(
                AddClient(
                    smart_client(client_id, org[0], org[1], scope, ClientKeys(jwks=key_set)),
                    "sandbox",
                ),
                platform.units.security(),
            )
    finally:
        platform.close()


def our_key_set(data_dir: Path) -> dict[str, Any]:
    """The public key the platform in ``data_dir`` signs its assertions to partners with."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.config import load_settings

    platform = build_platform(load_settings(data_dir=data_dir))
    try:
        return platform.client_jwks
    finally:
        platform.close()


def our_client_id(npi: str) -> str:
    return f"platform-{npi}"


def write_environment(data_dir: Path, org: tuple[str, str], port: int) -> None:
    """Write the platform's organization and port to ``DATA_DIR/payerbridge.toml``, the
    config file every command given ``--data-dir DATA_DIR`` reads (PAYERBRIDGE_ variables
    still win): so the commands the demo prints act as its platform, on any port (the
    issuer of a token is our base URL). A file of the operator's own is left alone."""
    path = data_dir / "payerbridge.toml"
    if path.exists() and not path.read_text(errors="replace").startswith(_ENVIRONMENT_MARK):
        err.print(
            f"[yellow]{path} is not the demo's: left as it is; commands on {data_dir} "
            f"need PAYERBRIDGE_ORG_NPI={org[1]} PAYERBRIDGE_PORT={port}[/yellow]"
        )
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{_ENVIRONMENT_MARK} for the platform it runs; written again by each run.",
        f"org_name = {orjson.dumps(org[0]).decode()}",
        f"org_npi = {orjson.dumps(org[1]).decode()}",
        f"port = {port}",
    ]
    path.write_text("\n".join(lines) + "\n")
