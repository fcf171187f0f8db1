"""The suite's ``payerbridge`` processes, forked from one that has imported the product.

A ``payerbridge serve`` process spends about two seconds of CPU importing the product
before it answers, and the suite starts a hundred or so of them per backend on a 2-core
machine. A forkserver (``multiprocessing``) imports the product once per test worker;
each server, worker or command is then a fork of it that runs the command line as
``python -m payerbridge`` would: a process of its own, with its own environment, working
directory and log, stopped by the same signals. ``tests/e2e/test_cli.py`` and the demo
tests still run ``python -m payerbridge`` itself, so the interpreter's entry is tested too.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import subprocess
import sys
from multiprocessing import forkserver
from pathlib import Path

__all__ = ["ForkedProcess", "run_forked"]

# What `serve` and `worker` import: the forkserver imports them once, before any fork.
_PRELOAD = [
    "payerbridge.cli.main",
    "payerbridge.api.app",
    "payerbridge.api.tls",
    "payerbridge.bootstrap",
    "payerbridge.collector",
    "uvicorn",
    "tests.processes",
    "tests.preload",  # last: it computes what the others' start-up would, then freezes
]
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(_PRELOAD)
_STARTED: list[ForkedProcess] = []


def _start_forkserver() -> None:
    """Start the forkserver (once) in the environment the commands' consoles are made
    in: they are made on import, so the width the tests give them (wide enough that no
    path wraps) must be there before the preload."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "1000"
    try:
        forkserver.ensure_running()
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _main(
    args: list[str], env: dict[str, str], cwd: str, stdout: str, stderr: str, stdin: str | None
) -> None:
    """The child: the command as ``python -m payerbridge`` runs it, in the given
    environment and directory, its output to the given files (its input from ``stdin``'s
    file, if given)."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, stdout), (2, stderr)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(target, fd)
        os.close(target)
    if stdin is not None:
        sys.stdin = open(stdin)  # noqa: SIM115 - the child's input until it exits
    sys.argv = ["payerbridge", *args]
    from payerbridge.cli.main import main

    main(args)


class ForkedProcess:
    """A forked ``payerbridge`` command, with the part of ``subprocess.Popen``'s interface
    the tests use."""

    def __init__(
        self,
        args: list[str],
        *,
        env: dict[str, str],
        stdout: Path,
        stderr: Path | None = None,
        stdin: Path | None = None,
    ) -> None:
        self.args = args
        _start_forkserver()
        self._process = _CONTEXT.Process(
            target=_main,
            args=(
                args,
                env,
                os.getcwd(),
                str(stdout),
                str(stderr or stdout),
                str(stdin) if stdin is not None else None,
            ),
            name=f"payerbridge {args[0]}",
        )
        self._process.start()
        _STARTED.append(self)

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def run_forked(
    args: list[str],
    *,
    env: dict[str, str],
    output_dir: Path,
    timeout: float,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """A command run to its end, as ``subprocess.run(..., capture_output=True)`` would
    (``input``: what it reads on its standard input)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    stdout = output_dir / f"cli-{os.getpid()}-{len(_STARTED)}.out"
    stderr = stdout.with_suffix(".err")
    stdin = None
    if input is not None:
        stdin = stdout.with_suffix(".in")
        stdin.write_text(input)
    process = ForkedProcess(args, env=env, stdout=stdout, stderr=stderr, stdin=stdin)
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    return subprocess.CompletedProcess(
        args, code, stdout.read_text(errors="replace"), stderr.read_text(errors="replace")
    )


@atexit.register
def _kill_leftovers() -> None:
    """A test that left a process running must not hold its test worker at exit
    (multiprocessing joins its children then)."""
    for process in _STARTED:
        if process.poll() is None:
            process.kill()
            process.wait(10)
