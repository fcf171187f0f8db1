"""The SQL unit of work (ADR 0008): one write transaction that every store writes through.

``SqlTransactions.begin()`` opens a transaction on the writing engine (SQLite's write
lock taken at once, as every writer does) and yields a ``SqlUnitOfWork``. Stores take
it as their first argument and use:

- ``cursor()``: a DB-API cursor for the measured hot paths (``store.dbapi``). On
  PostgreSQL the transaction runs in psycopg's pipeline mode while only these run: the
  statements go to the server together, COMMIT included, and wait only where a result
  is read, so an exchange step of an UPDATE ... RETURNING, its inserts and COMMIT costs
  two round trips instead of one per statement;
- ``connection``: the SQLAlchemy ``Connection`` for plain Core statements. SQLAlchemy
  cannot read results in pipeline mode, so the first use leaves it (one round trip)
  and the rest of the transaction runs statement by statement.

Audit events recorded on the unit of work are appended last, just before COMMIT, in
the order they were recorded (``store.audit.append_events``).

Driver errors are translated here into ``StoreConflict`` (a unique key refused) and
``StoreUnavailable`` (the database did not answer), whether they surface inside the
block or at the commit; nothing above the store sees ``sqlite3`` or ``psycopg``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Engine

from payerbridge.audit.model import AuditEvent
from payerbridge.store.audit import append_events
from payerbridge.store.driver_errors import translated_errors
from payerbridge.transactions import UnitOfWork

__all__ = ["SqlTransactions", "SqlUnitOfWork", "sql_unit"]


class SqlUnitOfWork:
    """One open write transaction (see the module docstring)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.dialect = connection.dialect
        self.is_postgres = connection.dialect.name == "postgresql"
        self._events: list[AuditEvent] = []
        self._cursor: Any = None
        self._pipeline: AbstractContextManager[Any] | None = None
        self._pipelining_over = not self.is_postgres

    def record(self, *events: AuditEvent) -> None:
        self._events.extend(events)

    def cursor(self) -> Any:
        """The transaction's DB-API cursor (one per unit of work)."""
        if self._cursor is None:
            driver = self._connection.connection.dbapi_connection
            assert driver is not None
            if not self._pipelining_over:
                # PostgreSQL runs on psycopg: its DB-API connection is a psycopg.Connection.
                self._pipeline = cast("psycopg.Connection[Any]", driver).pipeline()
                self._pipeline.__enter__()
            self._cursor = driver.cursor()
        return self._cursor

    @property
    def connection(self) -> Connection:
        """The transaction's SQLAlchemy connection, for Core statements."""
        self._leave_pipeline()
        return self._connection

    def _leave_pipeline(self) -> None:
        self._pipelining_over = True
        if self._pipeline is not None:
            pipeline, self._pipeline = self._pipeline, None
            pipeline.__exit__(None, None, None)  # waits for what was sent, raises its errors

    def _finish(self) -> None:
        """The recorded events, then (pipelined) COMMIT; SQLAlchemy's own commit then
        finds nothing left to commit."""
        if self._events:
            append_events(self.cursor(), self._events)
        if self._pipeline is not None:
            self._cursor.execute("COMMIT")
            self._leave_pipeline()

    def _close(self, *, failed: bool) -> None:
        try:
            if self._pipeline is not None:
                pipeline, self._pipeline = self._pipeline, None
                if failed:  # the error is on its way out; the rollback follows
                    pipeline.__exit__(RuntimeError, RuntimeError(), None)
                else:
                    pipeline.__exit__(None, None, None)
        finally:
            if self._cursor is not None:
                self._cursor.close()  # before the connection goes back (see dbapi.cursor_of)


class SqlTransactions:
    """The ``Transactions`` port on one writing engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def begin(self) -> Iterator[SqlUnitOfWork]:
        with translated_errors(), self._engine.begin() as connection:
            unit = SqlUnitOfWork(connection)
            failed = True
            try:
                yield unit
                unit._finish()
                failed = False
            finally:
                unit._close(failed=failed)


def sql_unit(unit: UnitOfWork) -> SqlUnitOfWork:
    """``unit`` as the SQL stores need it; a unit of work of another kind (a fake's) is
    a wiring mistake."""
    if not isinstance(unit, SqlUnitOfWork):
        raise TypeError(f"a SQL store was given a {type(unit).__name__}, not a SqlUnitOfWork")
    return unit
