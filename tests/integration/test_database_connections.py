"""The pools' connections: reads outside transactions (the reader engine, raw_cursor)
leave them transactional for the writers that share them, and a connection the server
dropped while it sat idle is replaced before use; ``insert_rows`` writes alike on both.
Runs on both backends."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, LargeBinary, MetaData, String, Table, text

from payerbridge.bootstrap import build_platform, utcnow
from payerbridge.config import load_settings
from payerbridge.errors import SecondConnection, StoreConflict, StoreUnavailable
from payerbridge.store import engines
from payerbridge.store.dbapi import (
    DialectSql,
    cursor_of,
    driver_sql,
    insert_rows,
    parameters_of,
    raw_cursor,
)
from payerbridge.store.engines import create_db_engine, create_reader
from payerbridge.store.tables import UtcDateTime


@pytest.fixture
def engine(tmp_path: Path, database_env: Callable[[], dict[str, str]]) -> Iterator[Engine]:
    url = database_env().get("PAYERBRIDGE_DATABASE_URL")
    engine = create_db_engine(
        load_settings(data_dir=tmp_path, database_url=url).sqlalchemy_url, pool_size=1
    )
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE kept (n INTEGER)"))
    yield engine
    engine.dispose()


def _rolled_back_insert_leaves_nothing(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as connection:
        connection.execute(text("INSERT INTO kept VALUES (1)"))
        raise RuntimeError("abandon the transaction")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM kept")).scalar_one() == 0


def test_raw_cursor_reads_hand_back_a_transactional_connection(engine: Engine) -> None:
    with raw_cursor(engine) as cursor:
        cursor.execute("SELECT count(*) FROM kept")
        assert cursor.fetchone()[0] == 0
        if engine.dialect.name == "postgresql":  # no BEGIN/ROLLBACK round trips
            assert cursor.connection.info.transaction_status.name == "IDLE"
    with pytest.raises(Exception), raw_cursor(engine) as cursor:  # noqa: B017, PT011
        cursor.execute("SELECT * FROM no_such_table")
    _rolled_back_insert_leaves_nothing(engine)  # one pooled connection: the same one


def test_the_reader_reads_outside_transactions_and_writers_keep_theirs(engine: Engine) -> None:
    reader = create_reader(engine)
    with reader.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM kept")).scalar_one() == 0
        if engine.dialect.name == "postgresql":
            status = connection.connection.dbapi_connection.info.transaction_status
            assert status.name == "IDLE"
    _rolled_back_insert_leaves_nothing(engine)
    if reader is not engine and engine.dialect.name == "sqlite":
        reader.dispose()


def test_a_connection_dropped_while_idle_is_replaced_before_use(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite connections are files, not sessions a server can drop")
    with engine.connect() as connection:
        first = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with engine.connect() as connection:  # just used: no ping, the same session
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() == first
    admin = create_db_engine(engine.url.render_as_string(hide_password=False), pool_size=1)
    with admin.connect() as connection:  # as a server restart or an idle timeout would
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    admin.dispose()
    monkeypatch.setattr(engines, "_PING_AFTER_IDLE_SECONDS", 0.0)  # it has sat idle
    with engine.connect() as connection:
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != first


def test_insert_rows_writes_several_tables_in_order_with_nulls_or_nothing(engine: Engine) -> None:
    """``insert_rows``: one statement on PostgreSQL, executemany on SQLite; the rows land
    alike (NULLs, ids drawn in row order) and a failing insert leaves no table written."""
    tables = MetaData()
    first = Table(
        "first_rows",
        tables,
        Column("id", Integer, primary_key=True),
        Column("name", String(20), nullable=False),
        Column("note", String(20)),
    )
    second = Table(
        "second_rows", tables, Column("at", UtcDateTime(), primary_key=True), Column("n", Integer)
    )
    tables.create_all(engine)
    sql = DialectSql.of(engine.dialect)
    into_first, into_second = (
        sql.rows_insert(first, ("name", "note")),
        sql.rows_insert(second, ("at", "n")),
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as connection, cursor_of(connection) as cursor:
        insert_rows(
            cursor,
            (
                into_first,
                [{"name": f"row {n}", "note": None if n % 2 else "even"} for n in range(5)],
            ),
            (
                into_second,
                [{"at": sql.timestamp(start + timedelta(minutes=n)), "n": None} for n in range(3)],
            ),
            (into_second, []),  # nothing to insert: left out
        )
    duplicate = {"at": sql.timestamp(start), "n": 1}
    with (
        pytest.raises(StoreConflict),
        engine.begin() as connection,
        cursor_of(connection) as cursor,
    ):
        insert_rows(
            cursor, (into_first, [{"name": "lost", "note": None}]), (into_second, [duplicate])
        )
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT name, note FROM first_rows ORDER BY id")).all()
        assert [tuple(row) for row in rows] == [
            ("row 0", "even"),
            ("row 1", None),
            ("row 2", "even"),
            ("row 3", None),
            ("row 4", "even"),
        ]
        assert connection.execute(text("SELECT count(*) FROM second_rows")).scalar_one() == 3


def test_a_unit_of_work_commits_on_either_path_and_rolls_back_whole(engine: Engine) -> None:
    from sqlalchemy import insert

    from payerbridge.store.unit_of_work import SqlTransactions

    kept = Table("kept", MetaData(), Column("n", Integer))
    kept_n = driver_sql(engine.dialect, "INSERT INTO kept VALUES (:n)")
    transactions = SqlTransactions(engine, clock=utcnow)
    with transactions.begin() as unit:  # DB-API first
        unit.cursor().execute(kept_n, {"n": 1})
    with transactions.begin() as unit:  # Core first, then DB-API on the same transaction
        unit.connection.execute(insert(kept).values(n=2))
        unit.cursor().execute(kept_n, {"n": 3})
    with (
        pytest.raises(RuntimeError, match="Core statements before"),
        transactions.begin() as unit,
    ):
        unit.cursor().execute(kept_n, {"n": 4})
        unit.connection.execute(insert(kept).values(n=5))
    with pytest.raises(StoreConflict), transactions.begin() as unit:
        unit.cursor().execute(kept_n, {"n": 6})
        raise StoreConflict("as a refused key would")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT n FROM kept ORDER BY n")).scalars().all()
    assert rows == [1, 2, 3]
    # Each unit gave its one pooled connection back clean: a plain transaction runs.
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM kept"))
    _rolled_back_insert_leaves_nothing(engine)


def test_a_unit_of_work_copies_rows_after_its_pipelined_statements(engine: Engine) -> None:
    """Rows of a ``copy`` insert (COPY on PostgreSQL, which cannot run in the unit's
    pipeline) land in the unit's one transaction with the statements sent before and after
    them, NULLs and quoting kept; a refused row rolls all of it back."""
    from payerbridge.store.unit_of_work import SqlTransactions

    copied = Table(
        "copied_rows",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("body", String(200)),
        Column("at", UtcDateTime()),
    )
    copied.create(engine)
    sql = DialectSql.of(engine.dialect)
    into_copied = sql.rows_insert(copied, ("id", "body", "at"), copy=True)
    assert bool(into_copied.copy) == (engine.dialect.name == "postgresql")
    kept_n = driver_sql(engine.dialect, "INSERT INTO kept VALUES (:n)")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    bodies = ['{"a": "tab\there", "b": "line\nbreak"}', "back\\slash", None]
    transactions = SqlTransactions(engine, clock=utcnow)
    with transactions.begin() as unit:
        unit.cursor().execute(kept_n, {"n": 1})
        rows = [{"id": n, "body": body, "at": sql.timestamp(at)} for n, body in enumerate(bodies)]
        insert_rows(unit.copy_cursor(), (into_copied, rows))
        unit.cursor().execute(kept_n, {"n": 2})
    with (
        pytest.raises(StoreConflict),
        transactions.begin() as unit,
    ):
        unit.cursor().execute(kept_n, {"n": 3})
        insert_rows(unit.copy_cursor(), (into_copied, [{"id": 0, "body": "again", "at": None}]))
    with engine.connect() as connection:
        found = connection.execute(text("SELECT id, body FROM copied_rows ORDER BY id")).all()
        kept = connection.execute(text("SELECT n FROM kept ORDER BY n")).scalars().all()
    assert [tuple(row) for row in found] == list(enumerate(bodies))
    assert kept == [1, 2]
    with engine.begin() as connection:  # the connection went back to the pool clean
        connection.execute(text("DELETE FROM kept"))


def test_bytes_go_into_a_binary_column_as_they_are_by_copy_or_by_rows(engine: Engine) -> None:
    """A sealed body (ADR 0044: raw nonce and ciphertext) lands byte for byte, however its
    bytes look as text (tab, newline, backslash, NUL, not UTF-8): by COPY and as the JSON
    rows PostgreSQL's other inserts bind."""
    from payerbridge.store.unit_of_work import SqlTransactions

    binary = Table(
        "binary_rows",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("body", LargeBinary, nullable=True),
    )
    binary.create(engine)
    sql = DialectSql.of(engine.dialect)
    by_copy = sql.rows_insert(binary, ("id", "body"), copy=True)
    by_rows = sql.rows_insert(binary, ("id", "body"))
    bodies = [b"pb1:k1:\t\n\\\x00\xff\r", bytes(range(256)), b"", None]
    transactions = SqlTransactions(engine, clock=utcnow)
    with transactions.begin() as unit:
        copied = [{"id": n, "body": body} for n, body in enumerate(bodies)]
        insert_rows(unit.copy_cursor(), (by_copy, copied))
        bound = [{"id": 10 + n, "body": body} for n, body in enumerate(bodies)]
        insert_rows(unit.cursor(), (by_rows, bound))
    with engine.connect() as connection:
        found = dict(connection.execute(binary.select().order_by(binary.c.id)).all())
    assert found == {
        **dict(enumerate(bodies)),
        **{10 + n: body for n, body in enumerate(bodies)},
    }


def test_named_parameters_are_written_in_the_drivers_style(engine: Engine) -> None:
    """``:name`` parameters bind by name on either driver; casts (``::``), times in
    literals and a literal ``%`` are not parameters."""
    statement = driver_sql(
        engine.dialect,
        "SELECT CAST(:n AS INTEGER) + 1, '12:30', 'x' || :word || '%', :n * 2",
    )
    if engine.dialect.name == "postgresql":
        assert "%(n)s" in statement and "%%" in statement
    with engine.begin() as connection, cursor_of(connection) as cursor:
        cursor.execute(statement, {"n": 20, "word": "y"})
        assert tuple(cursor.fetchone()) == (21, "12:30", "xy%", 40)
    assert parameters_of("SELECT NULL::text, :a, :b_2 WHERE t = '1:2'") == ("a", "b_2")
    _, bound = DialectSql.of(engine.dialect).one_of("DELETE FROM t WHERE ref {one_of}", "pq")
    postgres = engine.dialect.name == "postgresql"
    assert bound == ({"values": ["p", "q"]} if postgres else {"v0": "p", "v1": "q"})


def test_a_unit_reads_its_own_result_when_an_unread_one_arrived_meanwhile(engine: Engine) -> None:
    """On PostgreSQL the unit's statements are pipelined on one cursor: an INSERT's result,
    never read, may arrive while the next statement is sent. The read after it must still
    get its own result (a bulk chunk's commit once got the INSERT's: "the last operation
    didn't produce records")."""
    if engine.dialect.name != "postgresql":
        pytest.skip("pipelining is PostgreSQL's")
    from payerbridge.store.unit_of_work import SqlTransactions

    transactions = SqlTransactions(engine, clock=utcnow)
    with transactions.begin() as unit:
        cursor = unit.cursor()
        cursor.execute(driver_sql(engine.dialect, "INSERT INTO kept VALUES (:n)"), {"n": 1})
        # Ask the server for the INSERT's result now and let it arrive, as a busy pipeline
        # does on its own: psycopg takes it in while sending the next statement.
        connection = unit._driver
        connection.pgconn.send_flush_request()
        connection.pgconn.flush()
        time.sleep(0.05)
        cursor.execute(
            driver_sql(engine.dialect, "UPDATE kept SET n = :to WHERE n = :n RETURNING n"),
            {"to": 2, "n": 1},
        )
        assert cursor.fetchone() == (2,)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM kept")).scalars().all() == [2]


def test_a_process_opens_no_more_connections_than_configured(
    tmp_path: Path, database_env: Callable[[], dict[str, str]]
) -> None:
    """Several processes share one PostgreSQL server's max_connections: each opens at most
    ``database_max_connections`` for its tables, and a thread past them waits its turn."""
    url = database_env().get("PAYERBRIDGE_DATABASE_URL")
    if url is None:
        pytest.skip("SQLite opens files, not sessions of a server")
    settings = load_settings(data_dir=tmp_path, database_url=url, database_max_connections=2)
    platform = build_platform(settings)
    engine = platform.engine
    engine.pool._timeout = 0.5  # type: ignore[attr-defined]  # noqa: SLF001
    try:
        with (
            engine.connect(),
            engine.connect(),
            pytest.raises(Exception, match="QueuePool limit of size 2"),  # noqa: PT011
        ):
            engine.connect()
    finally:
        platform.close()


def test_a_thread_whose_unit_holds_a_connection_is_refused_a_second_one(
    engine: Engine,
) -> None:
    """A read on another connection while the thread's unit holds one would wait, under
    load, for a connection every other unit holds the same way: refused at once."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writer is no pooled connection; its readers never wait on it")
    from payerbridge.store.unit_of_work import SqlTransactions

    transactions = SqlTransactions(engine, clock=utcnow)
    with pytest.raises(SecondConnection), transactions.begin() as unit:
        unit.cursor().execute("INSERT INTO kept VALUES (1)")  # the unit takes its connection
        with engine.connect():
            pass
    with transactions.begin() as unit:  # before its first statement it holds none
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM kept")).scalar_one() == 0
        unit.cursor().execute("INSERT INTO kept VALUES (2)")
    with engine.connect() as connection:  # and once it ended, it holds none either
        assert connection.execute(text("SELECT n FROM kept")).scalars().all() == [2]


def test_a_server_that_does_not_answer_is_store_unavailable_on_every_way_in() -> None:
    """A PostgreSQL restarting refuses connections for a while: the reader, a raw cursor
    and a unit of work each say StoreUnavailable (503 ``transient`` at the API, a step
    waited out in a workflow), never the driver's own error (a 500). Nothing need listen:
    the port is one nobody does."""
    from payerbridge.store.unit_of_work import SqlTransactions
    from tests.servers import free_port

    gone = create_db_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone")
    try:
        with pytest.raises(StoreUnavailable), create_reader(gone).connect() as connection:
            connection.execute(text("SELECT 1"))
        with pytest.raises(StoreUnavailable), raw_cursor(gone) as cursor:
            cursor.execute("SELECT 1")
        transactions = SqlTransactions(gone, clock=utcnow)
        with pytest.raises(StoreUnavailable), transactions.begin() as unit:
            unit.cursor().execute("SELECT 1")
    finally:
        gone.dispose()
