"""Engines and schema migrations for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Self, cast

import orjson
import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError

from payerbridge.store.tables import UtcDateTime

__all__ = [
    "DialectSql",
    "RowsInsert",
    "WalCheckpointer",
    "create_db_engine",
    "create_reader",
    "create_workflow_engine",
    "cursor_of",
    "driver_sql",
    "insert_rows",
    "migrate",
    "raw_cursor",
    "raw_transaction",
    "read_row",
    "sqlite_timestamp",
    "write_transaction",
]

logger = logging.getLogger(__name__)

# What a constraint violation raises from DB-API statements (SQLAlchemy's own
# IntegrityError wraps these only for what runs through it).
DRIVER_INTEGRITY_ERRORS: tuple[type[Exception], ...] = (
    psycopg.IntegrityError,
    sqlite3.IntegrityError,
)

_MIGRATIONS = Path(__file__).parent / "migrations"
_BUSY_TIMEOUT_SECONDS = 30
# A commit checkpoints the WAL itself only past this many pages (about 80 MB): a backstop
# for when no WalCheckpointer runs or it falls behind (SQLite's default is 1000 pages).
_WAL_BACKSTOP_PAGES = 20_000


def create_db_engine(url: str, *, pool_size: int = 10, reads_only: bool = False) -> Engine:
    """An engine tuned for the backend: WAL, a busy timeout and immediate transactions on SQLite.

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
            connect_args["factory"] = _WriterConnection
        engine = create_engine(url, connect_args=connect_args)
        event.listen(engine, "connect", _sqlite_pragmas)
        _spares[engine] = spares = _SpareConnections(engine, keep=pool_size)
        event.listen(engine, "engine_disposed", lambda _engine: spares.close())
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
    return ping_when_idle(
        create_engine(url, pool_size=2 * pool_size, max_overflow=0, connect_args=_PREPARED)
    )


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


def create_workflow_engine(url: str) -> Engine:
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
            url, pool_size=20, max_overflow=0, pool_timeout=30, connect_args=connect_args
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
    cursor.close()


class WalCheckpointer:
    """Copies SQLite's write-ahead logs back into their database files from a thread.

    By default the commit that takes the WAL past 1000 pages copies it back and syncs the
    file, inside whatever request happened to commit: about one commit in a hundred took
    2-117 ms, most of ``$member-match``'s p99, and the others paid for it in throughput.
    Here a daemon thread runs a PASSIVE checkpoint (it never waits for, or blocks, readers
    and writers) every ``interval`` seconds, on its own connection; the sqlite3 module
    lets other threads run while it works. Commits keep SQLite's own checkpoint as a
    backstop only (``_WAL_BACKSTOP_PAGES``)."""

    def __init__(self, *, interval: float = 0.2) -> None:
        self._interval = interval
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
        try:
            while not self._stop.wait(self._interval):
                with self._lock:
                    paths = list(self._paths)
                for path in paths:
                    try:
                        connection = connections.get(path)
                        if connection is None:
                            connection = connections[path] = sqlite3.connect(
                                path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None
                            )
                        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    except sqlite3.Error as exc:  # the next round tries again
                        logger.warning(
                            "WAL checkpoint failed", extra={"error_type": type(exc).__name__}
                        )
        finally:
            for connection in connections.values():
                connection.close()


def _begin_immediate(connection: Any) -> None:
    # Take SQLite's write lock when a transaction starts, not when it first writes:
    # a read-then-write transaction racing another writer would otherwise fail with
    # SQLITE_BUSY at once instead of waiting out the busy timeout. (The driver runs in
    # autocommit mode so that this BEGIN is the only one issued.)
    writer: _WriterConnection = connection.connection.dbapi_connection
    writer.take_lock()
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
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


class _WriterConnection(sqlite3.Connection):
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


# -- the hot paths' DB-API access ------------------------------------------------------------
# A request that runs a handful of small statements spends more in SQLAlchemy's Connection
# (events, transaction objects, compiling and caching expressions) than in the database.
# The hot paths (authentication, $member-match) use these instead, with SQL written once.


def driver_sql(dialect: Dialect, text: str) -> str:
    """``text`` with ``?`` placeholders in the driver's own style (``%s`` for psycopg)."""
    return text.replace("?", "%s") if dialect.paramstyle in ("format", "pyformat") else text


def sqlite_timestamp(value: datetime) -> str:
    """An aware datetime as SQLAlchemy's SQLite ``DateTime`` stores a ``UtcDateTime``
    (UTC, zone dropped, always six fraction digits); tests hold the two equal."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _read_sqlite_timestamp(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _as_read(value: datetime | None) -> datetime | None:
    return value


_dialect_sql: dict[tuple[type, str, str], Any] = {}  # by kind and dialect


class DialectSql:
    """Statements of a hot path as DB-API SQL for one dialect, with timestamps bound and
    read back as the ``UtcDateTime`` column type does, so the rows are the ones
    SQLAlchemy writes and reads. Subclasses write their SQL with ``?`` (``sql``)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.is_postgres = dialect.name == "postgresql"
        self.timestamp: Callable[[datetime], Any]
        self.read_timestamp: Callable[[Any], datetime | None]
        if dialect.name == "sqlite":  # the column type's text, in one C call, not two layers
            self.timestamp, self.read_timestamp = sqlite_timestamp, _read_sqlite_timestamp
        else:
            processor = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
            self.timestamp, self.read_timestamp = processor or (lambda value: value), _as_read
        self._row_reads: dict[tuple[Any, ...], tuple[str, tuple[str, ...], tuple[str, ...]]] = {}

    def sql(self, text: str) -> str:
        return driver_sql(self.dialect, text)

    def row_by(
        self, table: Table, key: str, columns: Sequence[str] | None = None
    ) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """``read_row``'s statement for ``table`` by ``key`` (all columns, or ``columns``),
        with the columns it returns and those of them that are timestamps; written once."""
        cache_key = (table.name, key, tuple(columns) if columns else None)
        found = self._row_reads.get(cache_key)
        if found is None:
            names = tuple(columns) if columns else tuple(c.name for c in table.c)
            text = self.sql(f"SELECT {', '.join(names)} FROM {table.name} WHERE {key} = ?")
            stamps = tuple(n for n in names if isinstance(table.c[n].type, UtcDateTime))
            found = self._row_reads[cache_key] = (text, names, stamps)
        return found

    def rows_insert(self, table: Table, columns: Sequence[str], suffix: str = "") -> RowsInsert:
        """The INSERT of rows of ``columns`` into ``table`` (``suffix``: an ON CONFLICT
        clause) for ``insert_rows``."""
        names = ", ".join(columns)
        if not self.is_postgres:
            marks = ", ".join("?" * len(columns))
            text = self.sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks}){suffix}")
            return RowsInsert(text, tuple(columns), as_json=False)
        rows = f"json_populate_recordset(NULL::{table.name}, %s)"  # typed as the table's row
        text = f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {rows}{suffix}"
        return RowsInsert(text, tuple(columns), as_json=True)

    def bound(
        self, values: Mapping[str, Any], columns: Sequence[str], timestamps: Collection[str]
    ) -> tuple[Any, ...]:
        """The ``values`` of ``columns`` as the driver binds them (those of ``timestamps``
        through ``timestamp``): ``named`` the other way round."""
        stamp = self.timestamp
        return tuple(
            stamp(values[column])
            if column in timestamps and values[column] is not None
            else values[column]
            for column in columns
        )

    def named(
        self, columns: Sequence[str], timestamps: Collection[str], row: Sequence[Any]
    ) -> SimpleNamespace:
        """A DB-API row of ``columns`` by name, its ``timestamps`` read as the column type
        reads them: what the stores' mappers of SQLAlchemy rows take."""
        values = dict(zip(columns, row, strict=True))
        for column in timestamps:
            values[column] = self.read_timestamp(values[column])
        return SimpleNamespace(**values)

    @classmethod
    def of(cls, dialect: Dialect) -> Self:
        """This kind's statements for ``dialect``, written once per process."""
        key = (cls, dialect.name, dialect.paramstyle)
        found = _dialect_sql.get(key)
        if found is None:
            found = _dialect_sql[key] = cls(dialect)
        return found


@dataclass(frozen=True)
class RowsInsert:
    """An INSERT of any number of rows (``DialectSql.rows_insert``). On PostgreSQL the
    rows are bound as one JSON array, which the server turns into rows of the table's
    own types: one statement, parsed and planned once, and one parameter that orjson
    writes in C. psycopg's executemany pipelines every row through Python: 35 resources
    cost 1.1 ms of client CPU that way, 0.7 ms as one array per column (each value still
    dumped in Python) and 0.55 ms as JSON. Elsewhere: executemany, one row at a time."""

    text: str
    columns: tuple[str, ...]
    as_json: bool


def insert_rows(cursor: Any, *inserts: tuple[RowsInsert, Sequence[Sequence[Any]]]) -> None:
    """Each insert's rows in the caller's transaction. On PostgreSQL all of them are one
    statement (each insert but the last a data-modifying WITH query: one round trip), so
    the inserts must not depend on each other; within each, ids are drawn in row order.
    Values are what the driver binds (``DialectSql.timestamp`` for timestamps)."""
    inserts = tuple((insert, rows) for insert, rows in inserts if rows)
    if not inserts:
        return
    if not inserts[0][0].as_json:
        for insert, rows in inserts:
            cursor.executemany(insert.text, rows)
        return
    *leading, last = [insert for insert, _ in inserts]
    text = last.text
    if leading:
        queries = ", ".join(f"i{n} AS ({insert.text})" for n, insert in enumerate(leading))
        text = f"WITH {queries} {text}"
    documents = [
        orjson.dumps([dict(zip(insert.columns, row, strict=True)) for row in rows]).decode()
        for insert, rows in inserts
    ]
    cursor.execute(text, documents)


@contextmanager
def cursor_of(connection: Any) -> Iterator[Any]:
    """A DB-API cursor of ``connection`` (a SQLAlchemy or a pooled DB-API one), closed
    before the connection goes back to the pool: a cursor left to the garbage collector
    would reset its statement while another thread uses the connection."""
    cursor = (connection.connection if isinstance(connection, Connection) else connection).cursor()
    try:
        yield cursor
    finally:
        cursor.close()


class _SpareConnections:
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


_spares: weakref.WeakKeyDictionary[Engine, _SpareConnections] = weakref.WeakKeyDictionary()

# raw_cursor and raw_transaction are one generator each (no nested context managers):
# they run several times in every $member-match.


def _take_driver_connection(engine: Engine) -> tuple[Any, Any]:
    """A driver (DB-API) connection of ``engine`` (a spare one on SQLite) and what to give
    it back to: the spares, or the pool's proxy."""
    spares = _spares.get(engine)
    if spares is not None:
        return spares.take(), spares
    pooled = engine.raw_connection()
    return pooled.dbapi_connection, pooled


def _give_back(connection: Any, owner: Any, *, failed: bool) -> None:
    if isinstance(owner, _SpareConnections):
        owner.give_back(connection, failed=failed)
    else:
        owner.close()  # back to the pool, which rolls back what the block left open


def _transactional_again(connection: Any, owner: Any) -> bool:
    """A pooled connection ``raw_cursor`` put in autocommit, as the pool's other users
    expect it; False when it broke meanwhile (it is then dropped from the pool)."""
    try:
        connection.autocommit = False
    except Exception:  # noqa: BLE001 - a broken connection
        owner.invalidate()
        return False
    return True


@contextmanager
def raw_cursor(engine: Engine) -> Iterator[Any]:
    """A DB-API cursor for reads, outside any transaction (each statement sees the last
    commit; on SQLite none takes the write lock).

    On SQLite, pass the writing engine even for reads: a connection's page cache survives
    its own commits but is dropped whenever another connection commits, so the spare that
    the last write transaction gave back reads from memory where a reader connection would
    read the pages again (2-3% of a ``$member-match`` at 1M members)."""
    connection, owner = _take_driver_connection(engine)
    pooled = not isinstance(owner, _SpareConnections)  # (SQLite's spares autocommit)
    failed = True
    try:
        if pooled:  # psycopg: no BEGIN, no ROLLBACK
            connection.autocommit = True
        cursor = connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()  # before the connection is reused: see cursor_of
        failed = False
    finally:
        if not pooled or _transactional_again(connection, owner):
            _give_back(connection, owner, failed=failed)


def read_row(
    engine: Engine, table: Table, key: str, value: Any, *, columns: Sequence[str] | None = None
) -> SimpleNamespace | None:
    """The row of ``table`` whose ``key`` column is ``value``, by column name with its
    timestamps read as ``UtcDateTime`` reads them (what the stores' mappers of SQLAlchemy
    rows take), or None. DB-API SQL on ``raw_cursor``, for the reads every exchange hop
    makes (the exchange, its partner, its opt-in, the endpoint's breaker): as SQLAlchemy
    statements they cost more in Python than in the database."""
    sql = DialectSql.of(engine.dialect)
    text, names, stamps = sql.row_by(table, key, columns)
    with raw_cursor(engine) as cursor:  # see raw_cursor: the writer's engine, on SQLite
        cursor.execute(text, (value,))
        row = cursor.fetchone()
    return None if row is None else sql.named(names, stamps, row)


@contextmanager
def raw_transaction(engine: Engine) -> Iterator[Any]:
    """A DB-API cursor in a transaction of its own: committed when the block ends, rolled
    back if it raises. On SQLite it takes the write lock as the engine's transactions do
    (``_begin_immediate``); psycopg begins one at the first statement."""
    connection, owner = _take_driver_connection(engine)
    failed = True
    try:
        if isinstance(connection, _WriterConnection):
            connection.take_lock()
            try:
                connection.execute("BEGIN IMMEDIATE")
            except BaseException:
                connection.drop_lock()
                raise
        try:
            cursor = connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
        except BaseException:
            connection.rollback()
            raise
        connection.commit()
        failed = False
    finally:
        _give_back(connection, owner, failed=failed)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """``engine.begin()`` whose statements go to PostgreSQL together, COMMIT included: the
    driver's pipeline mode sends them when a result is read (a ``fetchone``) or when the
    block ends, so a transaction of an UPDATE ... RETURNING, its inserts and COMMIT costs
    two round trips instead of one per statement. In the block, DB-API statements only
    (``cursor_of``): SQLAlchemy cannot read results in pipeline mode. An error in a
    statement is raised when its results arrive, at the latest when the block ends, and
    rolls the transaction back as usual. On SQLite, ``engine.begin()`` itself."""
    with engine.begin() as connection:
        if connection.dialect.name != "postgresql":
            yield connection
            return
        # PostgreSQL runs on psycopg: its DB-API connection is a psycopg.Connection.
        driver = cast("psycopg.Connection[Any]", connection.connection.dbapi_connection)
        with driver.pipeline():
            yield connection
            driver.execute("COMMIT")  # SQLAlchemy's commit then finds nothing to commit


def _begin_deferred(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    logger.info("database schema at head", extra={"backend": engine.dialect.name})
