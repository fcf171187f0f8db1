"""Engines for SQLite (embedded) and PostgreSQL (scale-out): pools, pragmas, the writers'
file lock, the WAL checkpointer, DBOS's engine, and migrating the schema to its head."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
import traceback
import weakref
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError

from payerbridge.errors import SecondConnection
from payerbridge.store.driver_errors import translate_driver_error

__all__ = [
    "SpareConnections",
    "WalCheckpointer",
    "WriterConnection",
    "create_db_engine",
    "create_reader",
    "create_workflow_engine",
    "hold_for_unit",
    "migrate",
    "release_for_unit",
    "spares_of",
]

logger = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).parent / "migrations"
_BUSY_TIMEOUT_SECONDS = 30
# A commit checkpoints the WAL itself only past this many pages (about 80 MB): a backstop
# for when no WalCheckpointer runs or it falls behind (SQLite's default is 1000 pages).
_WAL_BACKSTOP_PAGES = 20_000


def create_db_engine(
    url: str, *, pool_size: int = 10, reads_only: bool = False, max_connections: int | None = None
) -> Engine:
    """An engine tuned for the backend: WAL, a busy timeout and immediate transactions on SQLite.

    ``max_connections`` (PostgreSQL): the most this engine opens, ``2 * pool_size`` when
    unset; on SQLite, ``pool_size`` spare connections are kept.

    ``reads_only`` (SQLite): an engine for read-only hot paths whose transactions are
    plain deferred ones, so concurrent readers do not queue for the write lock (WAL
    readers see the last committed state). Never write through it."""
    if url.startswith("sqlite"):
        path = _sqlite_file(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        connect_args: dict[str, Any] = {
            "timeout": 30,
            "check_same_thread": False,
            "isolation_level": None,
        }
        if not reads_only:
            connect_args["factory"] = WriterConnection
        engine = create_engine(url, connect_args=connect_args)
        event.listen(engine, "connect", _sqlite_pragmas)
        _spares[engine] = spares = SpareConnections(engine, keep=pool_size)
        event.listen(engine, "engine_disposed", lambda _engine: spares.close())
        event.listen(engine, "handle_error", translate_driver_error)
        if reads_only:
            event.listen(engine, "begin", _begin_deferred)
        else:
            lock = _write_locks.setdefault(str(path), _FileWriteLock(path))
            event.listen(engine, "connect", lambda dbapi, _record: dbapi.use_lock(lock))
            event.listen(engine, "begin", _begin_immediate)
        return engine
    # At most 2 * pool_size connections, as before, but all kept: an overflow connection is
    # closed when handed back to a full pool, so under load (a worker runs up to 64
    # exchanges) the pool opened and closed 71 in 500 exchanges, each a backend the server
    # forks. A thread that finds the pool empty waits for one; the work is CPU-bound then.
    size = max_connections or 2 * pool_size
    engine = create_engine(url, pool_size=size, max_overflow=0, connect_args=_PREPARED)
    event.listen(engine, "handle_error", translate_driver_error)
    event.listen(engine, "checkout", _refuse_a_second_connection(engine))
    return ping_when_idle(engine)


_units = threading.local()  # the engines whose connection a unit of this thread holds


def hold_for_unit(engine: Engine) -> None:
    """A unit of work of this thread has taken a connection of ``engine`` (until
    ``release_for_unit``)."""
    held: dict[int, int] = _units.__dict__.setdefault("held", {})
    held[id(engine)] = held.get(id(engine), 0) + 1


def release_for_unit(engine: Engine) -> None:
    held: dict[int, int] = _units.__dict__.setdefault("held", {})
    left = held.get(id(engine), 0) - 1
    if left > 0:
        held[id(engine)] = left
    else:
        held.pop(id(engine), None)


def _refuse_a_second_connection(engine: Engine) -> Any:
    """A read or a second unit on another connection while this thread's unit holds one
    waits for a connection that, under load, every other unit holds the same way: the
    pool stalls until its timeout. Refused at once, with where, instead; the unit reads
    through its own cursor."""
    key = id(engine)

    def refuse(_dbapi: Any, _record: Any, _proxy: Any) -> None:
        if _units.__dict__.get("held", {}).get(key):
            where = [
                f"{frame.filename.rsplit('/src/', 1)[-1]}:{frame.lineno}"
                for frame in traceback.extract_stack()
                if "/payerbridge/" in frame.filename and not frame.filename.endswith("engines.py")
            ]
            logger.error("a second connection refused", extra={"where": where[-6:]})
            raise SecondConnection(
                "a connection was asked for while this thread's unit of work holds one; "
                "read and write through the unit instead"
            )

    return refuse


# psycopg prepares a statement on its first use on a connection, not its sixth: the
# server then plans it from the prepared statement instead of parsing and planning each
# run. Our statements are texts written once (DB-API SQL per dialect, SQLAlchemy's
# compiled cache), so few are ever dropped from the connection's 100 (prepared_max).
# With 60 pooled connections across three processes, 500 exchanges spent 473 ms of the
# server's time planning our statements; 286 ms with this. A prepared statement is one
# command: several in one text (DBOS's migrations) need the default, so DBOS keeps it.
_PREPARED = {"prepare_threshold": 0}


# A pooled connection idle this long is pinged before use (the server may have dropped
# it); one handed back moments ago is not, since it just worked.
_PING_AFTER_IDLE_SECONDS = 1.0


def ping_when_idle(engine: Engine) -> Engine:
    """``pool_pre_ping`` for connections that sat idle: pinging every checkout cost an
    exchange 22 round trips on PostgreSQL, a fifth of all it sent. A dead connection
    is replaced before use, as with ``pool_pre_ping``; one that died within the last
    second fails its statement once and SQLAlchemy then invalidates the whole pool."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < _PING_AFTER_IDLE_SECONDS:
            return  # new, or just used
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure: the pool connects afresh
            raise DisconnectionError("the pooled connection is gone") from exc

    return engine


def create_reader(engine: Engine) -> Engine:
    """The engine for reads of ``engine``'s database; never write through it.

    On SQLite, its own connections in deferred transactions, so reads never queue for
    the write lock (WAL readers see the last commit). On PostgreSQL, the same pool in
    autocommit: a read there costs a BEGIN and a ROLLBACK round trip otherwise, and a
    READ COMMITTED transaction gives each statement its own snapshot anyway."""
    if engine.dialect.name == "sqlite":
        return create_db_engine(engine.url.render_as_string(hide_password=False), reads_only=True)
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _sqlite_file(url: str) -> Path:
    """The database file of a ``sqlite:///`` URL, resolved (one name per file, for its
    process-wide write lock and its checkpoints)."""
    return Path(url.removeprefix("sqlite:///")).resolve()


def create_workflow_engine(url: str, *, max_connections: int = 20) -> Engine:
    """The engine of DBOS's system database; we dispose of it after DBOS is destroyed.

    DBOS's records need not wait for their flush to disk on either backend: a crash of
    the database or the machine may lose the last ones, and a lost record only runs
    idempotent work again (ADR 0004). Our own tables keep synchronous commits.

    On SQLite, DBOS's own engine keeps the rollback journal with full sync: every step
    record costs several fsyncs and readers wait for writers. This one behaves as DBOS's
    does (pysqlite opens an IMMEDIATE transaction before the first write, a long busy
    timeout, foreign keys on) but journals to a WAL synced at checkpoints, as our own
    database does. On PostgreSQL, it is DBOS's own (its pool, its timeouts) with
    asynchronous commits, and pings only connections that sat idle: DBOS's pinged every
    checkout, five round trips per exchange."""
    if not url.startswith("sqlite"):
        options = "-c synchronous_commit=off -c idle_in_transaction_session_timeout=60000"
        connect_args = {
            "application_name": "payerbridge-workflows",
            "connect_timeout": 10,
            "options": options,
        }
        engine = create_engine(
            url,
            pool_size=max_connections,
            max_overflow=0,
            pool_timeout=30,
            connect_args=connect_args,
        )
        return ping_when_idle(engine)
    _sqlite_file(url).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    event.listen(engine, "connect", _workflow_pragmas)
    return engine


def _workflow_pragmas(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    dbapi_connection.isolation_level = "IMMEDIATE"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA wal_autocheckpoint={_WAL_BACKSTOP_PAGES}")
    # What a row held before it was deleted or rewritten is overwritten with zeros, not
    # left in the file's free space (ADR 0044: nothing of a member in the clear at rest).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


class WalCheckpointer:
    """Copies SQLite's write-ahead logs back into their database files from a thread.

    By default the commit that takes the WAL past 1000 pages copies it back and syncs the
    file, inside whatever request happened to commit: about one commit in a hundred took
    2-117 ms, most of ``$member-match``'s p99, and the others paid for it in throughput.
    Here a daemon thread runs a PASSIVE checkpoint (it never waits for, or blocks, readers
    and writers) every ``interval`` seconds, on its own connection; the sqlite3 module
    lets other threads run while it works. Commits keep SQLite's own checkpoint as a
    backstop only (``_WAL_BACKSTOP_PAGES``). A round leaves alone a database whose log
    has not changed (size and modification time) since its last checkpoint, and after a
    round with nothing to do the next waits twice as long, up to ``idle_interval``: an
    idle process looks at two files' sizes about once a second (ADR 0050)."""

    def __init__(self, *, interval: float = 0.2, idle_interval: float = 1.0) -> None:
        self._interval = interval
        self._idle_interval = max(interval, idle_interval)
        self._paths: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def watch(self, url: str) -> None:
        """Checkpoint this SQLite database too (from the next round on)."""
        path = str(_sqlite_file(url))
        with self._lock:
            if path not in self._paths:
                self._paths.append(path)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="payerbridge-wal-checkpoint", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        connections: dict[str, sqlite3.Connection] = {}
        checkpointed: dict[str, tuple[int, int]] = {}  # the log as its last checkpoint left it
        wait = self._interval
        try:
            while not self._stop.wait(wait):
                with self._lock:
                    paths = list(self._paths)
                wait = min(2 * wait, self._idle_interval)
                for path in paths:
                    log = _wal_state(path)
                    if log is not None and checkpointed.get(path) == log:
                        continue
                    wait = self._interval
                    try:
                        connection = connections.get(path)
                        if connection is None:
                            connection = connections[path] = sqlite3.connect(
                                path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None
                            )
                        busy, frames, copied = connection.execute(
                            "PRAGMA wal_checkpoint(PASSIVE)"
                        ).fetchone()
                        if log is not None and not busy and frames == copied:
                            checkpointed[path] = log
                    except sqlite3.Error as exc:  # the next round tries again
                        logger.warning(
                            "WAL checkpoint failed", extra={"error_type": type(exc).__name__}
                        )
        finally:
            for connection in connections.values():
                connection.close()


def _wal_state(path: str) -> tuple[int, int] | None:
    """The write-ahead log's size and modification time (None while there is none)."""
    try:
        state = os.stat(f"{path}-wal")
    except OSError:
        return None
    return state.st_size, state.st_mtime_ns


def _begin_immediate(connection: Any) -> None:
    # Take SQLite's write lock when a transaction starts, not when it first writes:
    # a read-then-write transaction racing another writer would otherwise fail with
    # SQLITE_BUSY at once instead of waiting out the busy timeout. (The driver runs in
    # autocommit mode so that this BEGIN is the only one issued.)
    writer: WriterConnection = connection.connection.dbapi_connection
    writer.take_lock()
    try:
        # On the driver: SQLAlchemy's statement machinery costs more than the BEGIN.
        writer.execute("BEGIN IMMEDIATE")
    except BaseException:
        writer.drop_lock()
        raise


class _FileWriteLock:
    """One writer at a time per database file. SQLite admits one anyway, but a writer that
    finds the file locked sleeps in steps of up to 100 ms before it looks again, so with
    workers in several processes the CPUs sat idle a quarter of the time. Writers wait
    here instead, and start the moment the one before them lets go: this process's
    threads on a lock, processes on an exclusive ``flock`` of a file beside the database
    (the kernel wakes the next one, and lets go for a process that dies). Writers that
    do not take it (a tool of its own) still meet the others at SQLite's lock."""

    def __init__(self, path: Path) -> None:
        self._threads = threading.Lock()
        self._path = f"{path}.writer"
        self._fd: int | None = None
        self._pid = 0

    def acquire(self) -> bool:
        # As long as SQLite's busy timeout: a thread that somehow nests two write
        # transactions fails as it would without the lock, instead of hanging.
        if not self._threads.acquire(timeout=_BUSY_TIMEOUT_SECONDS):
            return False
        try:
            fcntl.flock(self._descriptor(), fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return True

    def release(self) -> None:
        try:
            fcntl.flock(self._descriptor(), fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _descriptor(self) -> int:
        # A forked child opens its own: a flock belongs to the open file, which a fork
        # shares, so parent and child would not exclude each other.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd


_write_locks: dict[str, _FileWriteLock] = {}


class WriterConnection(sqlite3.Connection):
    """A connection of the writing engine: holds the file's write lock from
    ``BEGIN IMMEDIATE`` until its transaction ends, however it ends."""

    _lock: _FileWriteLock | None = None
    _holding = False

    def use_lock(self, lock: _FileWriteLock) -> None:
        self._lock = lock

    def take_lock(self) -> None:
        if self._lock is not None and not self._holding:
            if not self._lock.acquire():
                raise sqlite3.OperationalError("database is locked")
            self._holding = True

    def drop_lock(self) -> None:
        if self._holding and self._lock is not None:
            self._holding = False
            self._lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.drop_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.drop_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.drop_lock()


class SpareConnections:
    """Idle driver connections of one SQLite engine, for the hot paths' DB-API access.

    Checking a connection out of SQLAlchemy's pool and back costs about 25 µs in Python
    (a proxy object, a weakref finaliser, a rollback on return), and a ``$member-match``
    took four: a tenth of the request. These are taken from the engine's pool once and
    detached from it, so the engine's connect events (pragmas, the write lock) have run
    on them; they run in autocommit mode, so there is nothing to reset between uses
    beyond a transaction left open by mistake. At most ``keep`` wait idle; a connection
    whose block raised is closed, not kept. Disposing of the engine closes the idle ones,
    and each one in use is closed when it comes back.
    (On PostgreSQL the pool stays: its checkout is small beside a network round trip, and
    it pings connections the server may have dropped.)"""

    def __init__(self, engine: Engine, *, keep: int) -> None:
        self._engine = engine
        self._keep = keep
        self._idle: list[sqlite3.Connection] = []  # append/pop are atomic under the GIL
        self._closed = False

    def take(self) -> sqlite3.Connection:
        try:
            return self._idle.pop()
        except IndexError:
            proxy = self._engine.raw_connection()
            proxy.detach()
            # The spares are SQLite's: its DB-API connection is a sqlite3.Connection.
            return cast(sqlite3.Connection, proxy.dbapi_connection)

    def give_back(self, connection: sqlite3.Connection, *, failed: bool) -> None:
        if failed or self._closed or len(self._idle) >= self._keep:
            connection.close()
            return
        if connection.in_transaction:
            connection.rollback()
        self._idle.append(connection)

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()


_spares: weakref.WeakKeyDictionary[Engine, SpareConnections] = weakref.WeakKeyDictionary()


def _begin_deferred(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


# The advisory lock key migrations hold on PostgreSQL (any constant; ours spells 'pbmigr').
_MIGRATION_LOCK = 0x70626D69677272


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Processes starting together on one database (an API and its workers after
            # an upgrade) take turns: the next one finds the schema at head. Without it
            # two ran the same migration at once, and one failed.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    logger.info("database schema at head", extra={"backend": engine.dialect.name})


def spares_of(engine: Engine) -> SpareConnections | None:
    """The idle driver connections kept for ``engine`` (SQLite's), or None (PostgreSQL)."""
    return _spares.get(engine)
