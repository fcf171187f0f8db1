"""The hot paths' DB-API access: statements written once per dialect, bulk inserts, and
cursors on driver connections (ADR 0004, ADR 0006). Write transactions are the unit of
work's (``store.unit_of_work``, ADR 0008).

Statements name their parameters (``:name``, as SQLAlchemy's ``text()`` does) and are
bound with mappings; ``driver_sql`` writes them in the driver's own style once. Table
and column names come from ``store.tables``."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, Self

import orjson
from sqlalchemy import Connection, Engine, Table
from sqlalchemy.engine import Dialect

from payerbridge.store.driver_errors import DRIVER_ERRORS, store_error, translated_errors
from payerbridge.store.engines import SpareConnections, spares_of
from payerbridge.store.tables import UtcDateTime

__all__ = [
    "DialectSql",
    "RowsInsert",
    "cursor_of",
    "driver_sql",
    "insert_rows",
    "parameters_of",
    "raw_cursor",
    "read_row",
    "give_back_driver_connection",
    "sqlite_timestamp",
    "take_driver_connection",
]

# -- the hot paths' DB-API access ------------------------------------------------------------
# A request that runs a handful of small statements spends more in SQLAlchemy's Connection
# (events, transaction objects, compiling and caching expressions) than in the database.
# The hot paths (authentication, $member-match) use these instead, with SQL written once.


# ``:name`` not preceded by a colon or a word character: ``NULL::type`` casts and
# ``12:30`` stay as they are.
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def driver_sql(dialect: Dialect, text: str) -> str:
    """``text`` with its ``:name`` parameters in the driver's own style: as they are for
    sqlite3, ``%(name)s`` for psycopg (whose literal ``%`` is then doubled)."""
    if dialect.paramstyle in ("format", "pyformat"):
        return _PARAMETER.sub(r"%(\1)s", text.replace("%", "%%"))
    return text


def parameters_of(text: str) -> tuple[str, ...]:
    """The names of the ``:name`` parameters of ``text``, in order."""
    return tuple(_PARAMETER.findall(text))


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
    SQLAlchemy writes and reads. Subclasses write their SQL with ``:name`` parameters
    (``sql``)."""

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
        self._one_of: dict[tuple[str, int], str] = {}

    def sql(self, text: str) -> str:
        return driver_sql(self.dialect, text)

    def one_of(self, template: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
        """``template`` with its ``{one_of}`` (after a column) testing that the column is one
        of ``values``, and the parameters: one array on PostgreSQL (one statement for any
        number of values), one parameter per value on SQLite; written once per shape."""
        size = 0 if self.is_postgres else len(values)
        text = self._one_of.get((template, size))
        if text is None:
            test = (
                "= ANY(:values)"
                if self.is_postgres
                else f"IN ({', '.join(f':v{n}' for n in range(size))})"
            )
            text = self._one_of[(template, size)] = self.sql(template.replace("{one_of}", test))
        if self.is_postgres:
            return text, {"values": list(values)}
        return text, {f"v{n}": value for n, value in enumerate(values)}

    def one_of_many(self, template: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
        """``one_of`` for lists of thousands of values, whose length differs each time: on
        SQLite one JSON parameter read with ``json_each`` (a statement per length, each
        binding thousands of parameters by name, costs more than the query)."""
        if self.is_postgres:
            return self.one_of(template, values)
        text = self._one_of.get((template, -1))
        if text is None:
            test = "IN (SELECT value FROM json_each(:values))"
            text = self._one_of[(template, -1)] = self.sql(template.replace("{one_of}", test))
        return text, {"values": orjson.dumps(list(values)).decode()}

    def row_by(
        self, table: Table, key: str, columns: Sequence[str] | None = None
    ) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """``read_row``'s statement for ``table`` by ``key`` (all columns, or ``columns``),
        with the columns it returns and those of them that are timestamps; written once."""
        cache_key = (table.name, key, tuple(columns) if columns else None)
        found = self._row_reads.get(cache_key)
        if found is None:
            names = tuple(columns) if columns else tuple(c.name for c in table.c)
            text = self.sql(f"SELECT {', '.join(names)} FROM {table.name} WHERE {key} = :key")
            stamps = tuple(n for n in names if isinstance(table.c[n].type, UtcDateTime))
            found = self._row_reads[cache_key] = (text, names, stamps)
        return found

    def insert(self, table: Table, columns: Sequence[str], suffix: str = "") -> str:
        """The INSERT of one row of ``columns`` into ``table``, each bound by its name
        (``suffix``: an ON CONFLICT clause)."""
        _check_columns(table, columns)
        values = ", ".join(f":{column}" for column in columns)
        return self.sql(
            f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({values}){suffix}"
        )

    def rows_insert(
        self, table: Table, columns: Sequence[str], suffix: str = "", *, copy: bool = False
    ) -> RowsInsert:
        """The INSERT of rows of ``columns`` into ``table`` (``suffix``: an ON CONFLICT
        clause) for ``insert_rows``, whose rows map each of ``columns`` to its value.
        ``copy``: on PostgreSQL the rows go by ``COPY`` (rows each carrying a large text,
        such as a resource body: see ``RowsInsert``)."""
        if not self.is_postgres:
            return RowsInsert(self.insert(table, columns, suffix), as_json=False)
        _check_columns(table, columns)
        names = ", ".join(columns)
        if copy:
            if suffix:
                raise ValueError("COPY takes no ON CONFLICT clause")
            return RowsInsert(
                f"COPY {table.name} ({names}) FROM STDIN", as_json=False, copy=tuple(columns)
            )
        # The rows as one JSON array typed as the table's row; ``insert_rows`` names it.
        rows = f"json_populate_recordset(NULL::{table.name}, %(rows)s)"
        text = f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {rows}{suffix}"
        return RowsInsert(text, as_json=True)

    def bound(self, values: Mapping[str, Any], timestamps: Collection[str]) -> dict[str, Any]:
        """``values`` as the driver binds them (those of ``timestamps`` through
        ``timestamp``): ``named`` the other way round."""
        stamp = self.timestamp
        return {
            column: stamp(value) if value is not None and column in timestamps else value
            for column, value in values.items()
        }

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


def _check_columns(table: Table, columns: Sequence[str]) -> None:
    unknown = set(columns) - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column {sorted(unknown)}")


@dataclass(frozen=True)
class RowsInsert:
    """An INSERT of any number of rows (``DialectSql.rows_insert``), each a mapping of
    ``columns`` to values. On PostgreSQL the rows are bound as one JSON array, which the
    server turns into rows of the table's own types: one statement, parsed and planned
    once, and one parameter that orjson writes in C. psycopg's executemany pipelines
    every row through Python: 35 resources cost 1.1 ms of client CPU that way, 0.7 ms as
    one array per column (each value still dumped in Python) and 0.55 ms as JSON.
    Rows that each carry a large text (a resource body, a decision's evidence) go by
    ``COPY`` instead (``copy`` names their columns in order): as JSON every such text is
    escaped once more and parsed again by the server, which cost three times the
    server's CPU of COPY for an export chunk's lines.
    Elsewhere: executemany, one row at a time."""

    text: str
    as_json: bool
    copy: tuple[str, ...] = ()


def insert_rows(cursor: Any, *inserts: tuple[RowsInsert, Sequence[Mapping[str, Any]]]) -> None:
    """Each insert's rows in the caller's transaction. On PostgreSQL all of them but those
    written by ``COPY`` are one statement (each insert but the last a data-modifying WITH
    query: one round trip), so the inserts must not depend on each other; within each,
    ids are drawn in row order. Values are what the driver binds
    (``DialectSql.timestamp`` for timestamps)."""
    inserts = tuple((insert, rows) for insert, rows in inserts if rows)
    for insert, rows in inserts:
        if insert.copy:
            with cursor.copy(insert.text) as copy:
                for row in rows:
                    copy.write_row([row[column] for column in insert.copy])
    inserts = tuple((insert, rows) for insert, rows in inserts if not insert.copy)
    if not inserts:
        return
    if not inserts[0][0].as_json:
        for insert, rows in inserts:
            cursor.executemany(insert.text, rows)
        return
    texts = [
        insert.text.replace("%(rows)s", f"%(rows{n})s") for n, (insert, _) in enumerate(inserts)
    ]
    *leading, text = texts
    if leading:
        queries = ", ".join(f"i{n} AS ({query})" for n, query in enumerate(leading))
        text = f"WITH {queries} {text}"
    cursor.execute(
        text,
        {
            f"rows{n}": orjson.dumps(rows, default=_bytea_text).decode()
            for n, (_, rows) in enumerate(inserts)
        },
    )


def _bytea_text(value: Any) -> str:
    """A binary value in a JSON row (a sealed body): bytea's hex text, which
    ``json_populate_recordset`` reads into a bytea column as those bytes."""
    if isinstance(value, bytes | memoryview):
        return "\\x" + value.hex()
    raise TypeError(f"{type(value).__name__} is not a column value")


@contextmanager
def cursor_of(connection: Any) -> Iterator[Any]:
    """A DB-API cursor of ``connection`` (a SQLAlchemy or a pooled DB-API one), closed
    before the connection goes back to the pool: a cursor left to the garbage collector
    would reset its statement while another thread uses the connection. Its driver's
    errors are raised as the store's (``store.driver_errors``)."""
    cursor = (connection.connection if isinstance(connection, Connection) else connection).cursor()
    try:
        yield cursor
    except DRIVER_ERRORS as error:
        ours = store_error(error)
        if ours is None:
            raise
        raise ours from error
    finally:
        cursor.close()


# raw_cursor is one generator (no nested context managers): it runs several times in
# every $member-match.


def take_driver_connection(engine: Engine) -> tuple[Any, Any]:
    """A driver (DB-API) connection of ``engine`` (a spare one on SQLite) and what to give
    it back to: the spares, or the pool's proxy."""
    spares = spares_of(engine)
    if spares is not None:
        return spares.take(), spares
    with translated_errors():  # the server restarting: StoreUnavailable, not the driver's
        pooled = engine.raw_connection()
    return pooled.dbapi_connection, pooled


def give_back_driver_connection(connection: Any, owner: Any, *, failed: bool) -> None:
    if isinstance(owner, SpareConnections):
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
    connection, owner = take_driver_connection(engine)
    pooled = not isinstance(owner, SpareConnections)  # (SQLite's spares autocommit)
    failed = True
    try:
        if pooled:  # psycopg: no BEGIN, no ROLLBACK
            connection.autocommit = True
        cursor = connection.cursor()
        try:
            yield cursor
        except DRIVER_ERRORS as error:
            ours = store_error(error)
            if ours is None:
                raise
            raise ours from error
        finally:
            cursor.close()  # before the connection is reused: see cursor_of
        failed = False
    finally:
        if not pooled or _transactional_again(connection, owner):
            give_back_driver_connection(connection, owner, failed=failed)


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
        cursor.execute(text, {"key": value})
        row = cursor.fetchone()
    return None if row is None else sql.named(names, stamps, row)
