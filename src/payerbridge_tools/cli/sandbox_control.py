"""Stopping and starting one sandbox partner while the rest keep serving.

The running sandbox (``payerbridge demo``, ``payerbridge sandbox up``) supervises its
processes and keeps their state in ``<data dir>/sandbox/control/state.json``: its own
pid and, per instance (a partner's slug, ``fhir-source``, ``platform``), its port, pid
and state (``running``, ``stopped`` on request, ``exited`` by itself). Another terminal
asks it to stop or start one by writing ``<name>.request`` (``stop`` or ``start``) beside
it: ``payerbridge sandbox partner stop|start NAME --data-dir DIR`` writes the request and
waits until the state says it was done. Files rather than signals or a socket: nothing to
listen on, and a request left by a sandbox that died is only read by the next one
(which clears them when it starts).

An instance that exits by itself is reported and left stopped; the others keep serving.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Protocol

import httpx
import orjson
import typer
from rich.console import Console

__all__ = ["Supervised", "Supervisor", "control_dir", "partner_app"]

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

partner_app = typer.Typer(
    no_args_is_help=True,
    help="Stop or start one partner of a running sandbox; the others keep serving.",
)

_ACTIONS = {"stop": "stopped", "start": "running"}


class Supervised(Protocol):
    """A process of the sandbox that can be started again as it was first started."""

    name: str
    port: int

    def poll(self) -> int | None: ...

    def pid(self) -> int: ...

    def terminate(self) -> None:
        """Stop it and wait until it has exited."""

    def restart(self) -> None: ...


def control_dir(data_dir: Path) -> Path:
    return data_dir / "sandbox" / "control"


class Supervisor:
    """Keeps a sandbox's processes as asked: reports one that exits, stops and starts
    one on request, and writes their state for ``payerbridge sandbox partner``."""

    def __init__(
        self,
        instances: Sequence[Supervised],
        data_dir: Path,
        *,
        is_healthy: Callable[[Supervised], bool] | None = None,
        start_timeout: float = 90,
    ) -> None:
        self.instances = {i.name: i for i in instances}
        self.data_dir = data_dir
        self.dir = control_dir(data_dir)
        self.states = {name: "running" for name in self.instances}
        self.is_healthy = is_healthy or _healthz
        self.start_timeout = start_timeout
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob("*.request"):
            stale.unlink(missing_ok=True)
        self.write_state()

    def check(self) -> None:
        """One round: note what exited by itself, then carry out the requests."""
        for name, instance in self.instances.items():
            code = instance.poll()
            if self.states[name] == "running" and code is not None:
                self.states[name] = "exited"
                err.print(
                    f"[red]{name} exited (code {code}); the others keep serving[/red]. "
                    f"Start it again: payerbridge sandbox partner start {name} "
                    f"--data-dir {self.data_dir}"
                )
                self.write_state()
        for request in sorted(self.dir.glob("*.request")):
            name = request.name.removesuffix(".request")
            action = request.read_text().strip()
            try:
                if name in self.instances and action in _ACTIONS:
                    self._carry_out(name, action)
            finally:  # gone once done: what the asking command waits for
                request.unlink(missing_ok=True)

    def _carry_out(self, name: str, action: str) -> None:
        instance = self.instances[name]
        if action == "stop" and instance.poll() is None:
            instance.terminate()  # waits for it to exit
            err.print(f"{name} stopped on request; the others keep serving")
        elif action == "start" and instance.poll() is not None:
            instance.restart()
            if not self._wait_started(instance):
                self.states[name] = "exited"
                err.print(f"[red]{name} did not start again; see its server.log[/red]")
                self.write_state()
                return
            err.print(f"{name} started again on port {instance.port}")
        self.states[name] = _ACTIONS[action]
        self.write_state()

    def _wait_started(self, instance: Supervised) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while instance.poll() is None and time.monotonic() < deadline:
            if self.is_healthy(instance):
                return True
            time.sleep(0.25)
        return False

    def write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "instances": {
                name: {
                    "port": instance.port,
                    "pid": instance.pid(),
                    "state": self.states[name],
                }
                for name, instance in self.instances.items()
            },
        }
        temporary = self.dir / "state.json.tmp"
        temporary.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))
        temporary.replace(self.dir / "state.json")

    def close(self) -> None:
        """The sandbox has stopped: no state left for a later command to trust."""
        (self.dir / "state.json").unlink(missing_ok=True)


def _healthz(instance: Supervised) -> bool:
    try:
        response = httpx.get(f"http://127.0.0.1:{instance.port}/healthz", timeout=1)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """The running sandbox's state, or None when none runs on ``data_dir``."""
    path = control_dir(data_dir) / "state.json"
    try:
        state = dict(orjson.loads(path.read_bytes()))
    except (OSError, orjson.JSONDecodeError):
        return None
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return None  # left by a sandbox that was killed
    return state


DataDir = Annotated[Path, typer.Option("--data-dir", help="The running sandbox's data directory.")]
Name = Annotated[str, typer.Argument(help="The partner (its slug, e.g. payer-b; or fhir-source).")]
Wait = Annotated[float, typer.Option(help="Seconds to wait for it to be done.")]


def _running_state(data_dir: Path) -> dict[str, Any]:
    state = read_state(data_dir)
    if state is None:
        err.print(
            f"[red]error:[/red] no sandbox is running on {data_dir} "
            "(start it with make run or payerbridge demo)"
        )
        raise typer.Exit(3)
    return state


def _ask(data_dir: Path, name: str, action: str, wait: float) -> None:
    state = _running_state(data_dir)
    if name not in state["instances"]:
        err.print(f"[red]error:[/red] {name} is not one of {', '.join(sorted(state['instances']))}")
        raise typer.Exit(2)
    request = control_dir(data_dir) / f"{name}.request"
    temporary = request.with_suffix(".tmp")
    temporary.write_text(action)
    temporary.replace(request)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        state = _running_state(data_dir)
        now = state["instances"][name]
        if not request.exists() and now["state"] == _ACTIONS[action]:
            out.print(f"{name}: {now['state']} (port {now['port']})")
            return
        if not request.exists() and action == "start" and now["state"] == "exited":
            err.print(f"[red]error:[/red] {name} did not start; see its server.log")
            raise typer.Exit(1)
        time.sleep(0.2)
    err.print(f"[red]error:[/red] {name} was not {_ACTIONS[action]} within {wait:g} s")
    raise typer.Exit(1)


@partner_app.command("stop")
def partner_stop(name: Name, data_dir: DataDir = Path("var"), wait: Wait = 60) -> None:
    """Stop one partner of the sandbox running on DATA_DIR; the others keep serving."""
    _ask(data_dir, name, "stop", wait)


@partner_app.command("start")
def partner_start(name: Name, data_dir: DataDir = Path("var"), wait: Wait = 120) -> None:
    """Start a stopped partner again, on the same port; returns once it answers."""
    _ask(data_dir, name, "start", wait)


@partner_app.command("list")
def partner_list(data_dir: DataDir = Path("var")) -> None:
    """Each process of the running sandbox: its port and state."""
    state = _running_state(data_dir)
    for name, instance in state["instances"].items():
        out.print(f"{name}: {instance['state']} (port {instance['port']}, pid {instance['pid']})")
