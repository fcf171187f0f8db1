"""SQLite writers of one process queue on the file's lock: concurrent writers all commit,
and a transaction that fails or is abandoned hands the lock on at once."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from payerbridge.bootstrap import build_platform, utcnow
from payerbridge.config import load_settings
from payerbridge.store.dbapi import raw_cursor
from payerbridge.store.engines import WalCheckpointer, create_db_engine
from payerbridge.store.unit_of_work import SqlTransactions


def _write_lock_is_free(database: Path) -> bool:
    """Nobody holds the writers' file lock or SQLite's write lock right now (asked without
    waiting: a held lock answers False at once)."""
    fd = os.open(f"{database}.writer", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # and with it the lock just taken
    probe = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()
    return True


def test_concurrent_writers_all_commit_and_failures_release_the_lock(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    other = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")  # same file, same lock
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))

    def write(n: int) -> None:
        with (engine if n % 2 else other).begin() as connection:
            value = connection.execute(text("SELECT count(*) FROM t")).scalar_one()
            connection.execute(text("INSERT INTO t VALUES (:n)"), {"n": value})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as connection:
        # Each writer saw every earlier commit: the counts it wrote are 0..39, none twice.
        values = connection.execute(text("SELECT n FROM t ORDER BY n")).scalars().all()
    assert values == list(range(40))

    with pytest.raises(RuntimeError), engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (-1)"))
        raise RuntimeError("the work failed")
    abandoned = engine.connect()
    abandoned.execute(text("INSERT INTO t VALUES (-2)"))
    abandoned.close()  # never committed: rolled back on return to the pool

    assert _write_lock_is_free(tmp_path / "db.sqlite")  # not held to the 30 s busy timeout
    with other.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (40)"))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT min(n), count(*) FROM t")).one() == (0, 41)
    engine.dispose()
    other.dispose()


def test_units_of_work_queue_with_engine_writers_and_roll_back_on_error(
    tmp_path: Path,
) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    transactions = SqlTransactions(engine, clock=utcnow)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))

    def write(n: int) -> None:
        if n % 2:
            with engine.begin() as connection:
                value = connection.execute(text("SELECT count(*) FROM t")).scalar_one()
                connection.execute(text("INSERT INTO t VALUES (:n)"), {"n": value})
        else:
            with transactions.begin() as unit:
                cursor = unit.cursor()
                value = cursor.execute("SELECT count(*) FROM t").fetchone()[0]
                cursor.execute("INSERT INTO t VALUES (?)", (value,))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with raw_cursor(engine) as cursor:
        assert [n for (n,) in cursor.execute("SELECT n FROM t ORDER BY n")] == list(range(30))

    with pytest.raises(RuntimeError), transactions.begin() as unit:
        unit.cursor().execute("INSERT INTO t VALUES (-1)")
        raise RuntimeError("the work failed")
    assert _write_lock_is_free(tmp_path / "db.sqlite")  # handed on at once
    with engine.begin() as connection:  # and the insert rolled back
        assert connection.execute(text("SELECT min(n), count(*) FROM t")).one() == (0, 30)
    engine.dispose()


def test_hot_path_connections_are_reused_closed_after_a_failure_and_on_dispose(
    tmp_path: Path,
) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", pool_size=2)
    with raw_cursor(engine) as cursor:
        cursor.execute("CREATE TABLE t (n INTEGER)")
        first = cursor.connection
    with raw_cursor(engine) as cursor:
        assert cursor.connection is first  # the spare came back and was taken again
        cursor.execute("SELECT count(*) FROM t")

    with pytest.raises(RuntimeError), raw_cursor(engine) as cursor:
        raise RuntimeError("the read failed")
    with pytest.raises(sqlite3.ProgrammingError):  # not kept: closed
        first.execute("SELECT 1")

    # A transaction left open by mistake is rolled back before the connection is reused.
    with raw_cursor(engine) as cursor:
        cursor.execute("BEGIN")
        cursor.execute("INSERT INTO t VALUES (1)")
        kept = cursor.connection
    assert not kept.in_transaction
    with raw_cursor(engine) as cursor:
        assert cursor.execute("SELECT count(*) FROM t").fetchone() == (0,)

    # At most pool_size wait idle; disposing of the engine closes them.
    cursors = [raw_cursor(engine) for _ in range(3)]
    opened = [c.__enter__() for c in cursors]
    connections = [c.connection for c in opened]
    assert len({id(c) for c in connections}) == 3
    for context in cursors:
        context.__exit__(None, None, None)
    engine.dispose()
    for connection in connections:
        with pytest.raises(sqlite3.ProgrammingError):
            connection.execute("SELECT 1")


def test_commits_leave_the_wal_to_the_checkpointer_thread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER, pad TEXT)"))
    for batch in range(20):  # about 1,300 pages: past SQLite's default checkpoint (1,000)
        with engine.begin() as connection:
            rows = [{"n": batch * 100 + i, "pad": "x" * 2000} for i in range(100)]
            connection.execute(text("INSERT INTO t VALUES (:n, :pad)"), rows)
    database = tmp_path / "db.sqlite"
    before = database.stat().st_size
    assert before < 100_000  # the commits copied nothing back: it is all in the WAL
    checkpointer = WalCheckpointer(interval=0.05)
    checkpointer.watch(url)
    deadline = time.monotonic() + 10
    while database.stat().st_size == before and time.monotonic() < deadline:
        time.sleep(0.05)
    checkpointer.close()
    assert database.stat().st_size > 4_000_000  # copied back by the thread
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar_one() == 2000
    engine.dispose()


def test_writers_in_other_processes_wait_at_the_file_lock(tmp_path: Path) -> None:
    """A writer in another process (forked after this one wrote) holds the lock file
    beside the database from BEGIN IMMEDIATE to COMMIT; ours waits its turn there and
    commits after it."""
    import fcntl
    import multiprocessing
    import os

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (who TEXT)"))
    context = multiprocessing.get_context("fork")
    holding, release = context.Event(), context.Event()

    def other_process() -> None:
        other = create_db_engine(url)
        with other.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES ('other')"))
            holding.set()
            release.wait(10)
        other.dispose()

    child = context.Process(target=other_process)
    child.start()
    assert holding.wait(10)
    probe = os.open(tmp_path / "db.sqlite.writer", os.O_RDWR)
    with pytest.raises(BlockingIOError):  # held by the other process
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    ours = threading.Thread(target=lambda: _insert(engine, "ours"))
    ours.start()
    time.sleep(0.2)  # ours is waiting for the other process
    release.set()
    ours.join(10)
    child.join(10)
    assert child.exitcode == 0
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    os.close(probe)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT who FROM t ORDER BY rowid")).scalars().all()
    assert rows == ["other", "ours"]
    engine.dispose()


def _insert(engine: Engine, who: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (:who)"), {"who": who})


def test_no_platform_thread_is_inside_sqlite_when_workers_fork(tmp_path: Path) -> None:
    """A fork while the checkpoint thread is inside SQLite copies SQLite's mutexes held:
    the batch matcher's workers then hang on their first connection."""
    platform = build_platform(load_settings(data_dir=tmp_path))
    try:
        checkpoints = [t for t in threading.enumerate() if t.name == "payerbridge-wal-checkpoint"]
        assert checkpoints and all(t.is_alive() for t in checkpoints)
        platform.before_fork()
        assert not any(t.is_alive() for t in checkpoints)
    finally:
        platform.close()
