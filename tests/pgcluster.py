"""A throwaway PostgreSQL cluster of a test's own, to stop and start while work is in flight.

The suite's PostgreSQL (``PAYERBRIDGE_TEST_DATABASE_URL``) is shared by every test
worker: a test that restarts the database must not restart that one. ``throwaway_cluster``
makes a cluster in a temporary directory with ``initdb`` (trust authentication, no
fsync: nothing in it outlives the test), runs it on a free port with its socket in the
same directory, and removes it at the end. The server binaries refuse to run as root, so
when the tests run as root (CI does) they run as the ``postgres`` OS user.

    with throwaway_cluster() as cluster:
        url = cluster.create_database("newpayer")
        ...
        cluster.stop()   # or cluster.restart(down_seconds=3)
        cluster.start()
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PgCluster", "missing_binaries", "throwaway_cluster"]

_BINARIES = ("initdb", "pg_ctl", "postgres")
_OS_USER = "postgres"  # who runs the server when we are root


def _binary(name: str) -> str | None:
    """The PostgreSQL binary ``name``: on PATH, or in Debian's versioned directory."""
    found = shutil.which(name)
    if found:
        return found
    versioned = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return versioned[-1] if versioned else None


def missing_binaries() -> str | None:
    """Why a throwaway cluster cannot be made here (None: it can)."""
    absent = [name for name in _BINARIES if _binary(name) is None]
    if absent:
        return f"PostgreSQL's {', '.join(absent)} not found on PATH or in /usr/lib/postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_OS_USER)
        except KeyError:
            return f"running as root and there is no {_OS_USER!r} user to run PostgreSQL as"
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """One PostgreSQL cluster in ``root``, on ``port`` of 127.0.0.1."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.data = root / "data"
        self.log = root / "postgres.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [_binary(args[0]) or args[0], *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", _OS_USER, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def initialise(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
            "shared_buffers": "32MB",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> None:
        """Start the cluster and wait until it accepts connections."""
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60")

    def stop(self) -> None:
        """Stop it as an operator's restart does: ``-m fast``, every session ended at once."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")

    def restart(self, *, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def create_database(self, name: str) -> str:
        """A new database ``name``; its URL."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def throwaway_cluster() -> Iterator[PgCluster]:
    """A running cluster of our own, stopped and removed when the block ends."""
    root = Path(tempfile.mkdtemp(prefix="pb-pgcluster-"))
    if os.geteuid() == 0:
        account = pwd.getpwnam(_OS_USER)
        os.chown(root, account.pw_uid, account.pw_gid)
    root.chmod(0o700)
    cluster = PgCluster(root, _free_port())
    try:
        cluster.initialise()
        cluster.start()
        yield cluster
    finally:
        try:
            if (cluster.data / "postmaster.pid").exists():
                cluster.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
