"""The SQL unit of work (ADR 0008): one write transaction that every store writes through.

``SqlTransactions.begin()`` yields a ``SqlUnitOfWork``; stores take it as their first
argument. The transaction starts with the unit's first statement, on one of two paths:

- ``cursor()`` first: a DB-API transaction on a driver connection, as the measured hot
  paths want (``store.dbapi``): on SQLite a spare connection that takes the write lock
  at BEGIN; on PostgreSQL a pooled one in psycopg's pipeline mode, so the statements go
  to the server together, COMMIT included, and wait only where a result is read (an
  exchange step: its ``UPDATE ... RETURNING``, then its inserts and COMMIT, in two round
  trips). SQLAlchemy's connection, events and transaction objects cost more than a
  ``$member-match``'s small statements. The unit's one cursor reads a result only once
  the pipeline is synced (``_SyncedReads``);
- ``connection`` first: the writing engine's SQLAlchemy transaction, for plain Core
  statements; ``cursor()`` then runs on the same connection. A unit that needs Core runs
  it before its first ``cursor()`` statement (a Core statement after them is refused:
  SQLAlchemy cannot take over a driver transaction).

Each unit carries ``now``, read once from the clock ``SqlTransactions`` was built with as
it begins, and ``new_id()``: the stores stamp its writes with them and read no clock.

When tracing records, each unit is a span named after the use case that began it
(``store.spans``). Audit events recorded on the unit are appended last, just before
COMMIT, in the order they were recorded, with the current trace's id when there is one
(``store.audit_append.append_events``). Webhook deliveries the unit wrote are
handed to ``SqlTransactions.relay_deliveries`` after the commit.

Driver errors are translated here into ``StoreConflict`` (a unique key refused) and
``StoreUnavailable`` (the database did not answer), whether they surface inside the
block or at the commit; nothing above the store sees ``sqlite3`` or ``psycopg``.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Connection, Engine

from payerbridge.audit.model import AuditEvent
from payerbridge.store.audit_append import append_events
from payerbridge.store.dbapi import give_back_driver_connection, take_driver_connection
from payerbridge.store.driver_errors import translated_errors
from payerbridge.store.engines import WriterConnection, hold_for_unit, release_for_unit
from payerbridge.store.spans import unit_span
from payerbridge.tracing import current_trace_id
from payerbridge.transactions import UnitOfWork

__all__ = ["SqlTransactions", "SqlUnitOfWork", "UnitBound", "sql_unit"]

logger = logging.getLogger(__name__)


class SqlUnitOfWork:
    """One write transaction (see the module docstring)."""

    def __init__(self, engine: Engine, *, now: datetime) -> None:
        self._engine = engine
        self.now = now  # the instant the unit began (UnitOfWork.now)
        self.dialect = engine.dialect
        self.is_postgres = engine.dialect.name == "postgresql"
        self._events: list[AuditEvent] = []
        self.deliveries: list[str] = []  # webhook deliveries written, for after the commit
        self._core: Connection | None = None  # begun on the Core path
        self._core_transaction: AbstractContextManager[Connection] | None = None
        self._driver: Any = None  # the DB-API connection in the transaction
        self._owner: Any = None  # where a driver connection of the DB-API path goes back
        self._cursor: Any = None
        self._pipeline: AbstractContextManager[Any] | None = None
        self._synced: Any = None  # psycopg's Pipeline, entered

    def new_id(self) -> str:
        return str(uuid.uuid4())

    def record(self, *events: AuditEvent) -> None:
        self._events.extend(events)

    def add_deliveries(self, delivery_ids: Sequence[str]) -> None:
        """Webhook deliveries this unit wrote, handed to the relay once it commits."""
        self.deliveries.extend(delivery_ids)

    @property
    def has_begun(self) -> bool:
        """Whether a statement has run in the unit (on either path)."""
        return self._driver is not None

    @property
    def engine(self) -> Engine:
        """The writing engine (its data keys: ``store.at_rest``)."""
        return self._engine

    def cursor(self) -> Any:
        """The transaction's DB-API cursor (one per unit of work)."""
        if self._cursor is None:
            if self._driver is None:
                self._begin_on_driver()
            cursor = self._driver.cursor()
            self._cursor = _SyncedReads(cursor, self._synced) if self._synced else cursor
        return self._cursor

    def copy_cursor(self) -> Any:
        """The transaction's cursor, able to run ``COPY`` (``dbapi.insert_rows``). COPY
        cannot run in psycopg's pipeline mode, so on PostgreSQL the unit leaves it here:
        what was sent so far is synced (its errors raised now) and the unit's later
        statements go one round trip at a time, as a bulk chunk's few do."""
        cursor = self.cursor()
        if self._pipeline is not None:
            pipeline, self._pipeline, self._synced = self._pipeline, None, None
            pipeline.__exit__(None, None, None)
            self._cursor = cursor = cursor.unpipelined
        return cursor

    @property
    def connection(self) -> Connection:
        """The transaction's SQLAlchemy connection, for Core statements."""
        if self._core is None:
            if self._driver is not None:
                raise RuntimeError(
                    "this unit of work began with DB-API statements; run its Core "
                    "statements before its first cursor() statement"
                )
            self._core_transaction = self._engine.begin()
            self._core = self._core_transaction.__enter__()
            self._driver = self._core.connection.dbapi_connection
            hold_for_unit(self._engine)
        return self._core

    def _begin_on_driver(self) -> None:
        driver, self._owner = take_driver_connection(self._engine)
        self._driver = driver
        hold_for_unit(self._engine)
        if isinstance(driver, WriterConnection):  # SQLite: the write lock, as every writer
            driver.take_lock()
            try:
                driver.execute("BEGIN IMMEDIATE")
            except BaseException:
                driver.drop_lock()
                raise
        elif self.is_postgres:  # psycopg begins at the first statement
            self._pipeline = driver.pipeline()
            self._synced = self._pipeline.__enter__()

    def _commit(self) -> None:
        if self._events:  # with the trace's id, when there is one: read once per unit
            append_events(self.cursor(), self._events, trace_id=current_trace_id())
        core, self._core_transaction = self._core_transaction, None
        if core is not None:
            self._close_cursor()
            try:
                core.__exit__(None, None, None)  # a failed commit rolls back inside
            finally:
                self._driver = None
                release_for_unit(self._engine)
        elif self._driver is not None:
            if self._pipeline is not None:
                self._cursor.execute("COMMIT")
                pipeline, self._pipeline, self._synced = self._pipeline, None, None
                pipeline.__exit__(None, None, None)  # waits for it, raises its errors
            else:
                self._driver.commit()
            self._close_cursor()
            driver, self._driver = self._driver, None
            release_for_unit(self._engine)
            give_back_driver_connection(driver, self._owner, failed=False)

    def _roll_back(self, error: BaseException) -> None:
        try:
            if self._pipeline is not None:
                pipeline, self._pipeline, self._synced = self._pipeline, None, None
                # psycopg keeps the block's error rather than its own
                pipeline.__exit__(type(error), error, error.__traceback__)
        finally:
            self._close_cursor()
            core, self._core_transaction = self._core_transaction, None
            if core is not None:
                self._driver = None
                release_for_unit(self._engine)
                core.__exit__(type(error), error, error.__traceback__)
            elif self._driver is not None and self._owner is not None:
                driver, self._driver = self._driver, None
                release_for_unit(self._engine)
                try:
                    driver.rollback()
                finally:
                    give_back_driver_connection(driver, self._owner, failed=True)

    def _close_cursor(self) -> None:
        # Before the connection goes back (see dbapi.cursor_of).
        if self._cursor is not None:
            cursor, self._cursor = self._cursor, None
            cursor.close()


class _SyncedReads:
    """psycopg's cursor in pipeline mode, whose fetches sync the pipeline first.

    Results come back in the order the statements were sent, and each is attached to the
    cursor that sent it. Sharing one cursor, a statement whose result is never read (an
    INSERT) can have its result arrive while a later statement of the cursor is being
    sent; the cursor then holds that result, and psycopg's fetch, seeing a result there,
    reads it instead of waiting for its own ("the last operation didn't produce
    records"). Syncing first processes every result up to the read, its own last."""

    def __init__(self, cursor: Any, pipeline: Any) -> None:
        self._cursor = cursor
        self._pipeline = pipeline

    def execute(self, query: Any, params: Any = None) -> _SyncedReads:
        self._cursor.execute(query, params)
        return self

    def executemany(self, query: Any, params_seq: Any) -> None:
        self._cursor.executemany(query, params_seq)

    def fetchone(self) -> Any:
        self._pipeline.sync()
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        self._pipeline.sync()
        return list(self._cursor.fetchall())

    def fetchmany(self, size: int = 0) -> list[Any]:
        self._pipeline.sync()
        return list(self._cursor.fetchmany(size))

    def close(self) -> None:
        self._cursor.close()

    @property
    def unpipelined(self) -> Any:
        """The driver's cursor itself, for once the connection has left pipeline mode."""
        return self._cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class SqlTransactions:
    """The ``Transactions`` port on one writing engine.

    ``clock``: read once as each unit begins (its ``now``). ``relay_deliveries``: what
    starts the webhook deliveries a unit wrote, once it has committed (bootstrap sets it
    where workflows run). A delivery the relay misses (no relay in this process, or the
    process died first) is started by the upkeep sweep. ``observe_committed``: what is
    told a committed unit's audit events (the metrics, ``metrics.events``)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock
        self.relay_deliveries: Callable[[Sequence[str]], None] | None = None
        self.observe_committed: Callable[[Sequence[AuditEvent]], None] | None = None

    @contextmanager
    def begin(self) -> Iterator[SqlUnitOfWork]:
        unit = SqlUnitOfWork(self._engine, now=self._clock())
        with unit_span(self._engine.dialect.name), translated_errors():
            try:
                yield unit
                unit._commit()
            except BaseException as error:
                unit._roll_back(error)
                raise
        if unit._events and self.observe_committed is not None:
            self.observe_committed(unit._events)
        relay = self.relay_deliveries
        if unit.deliveries and relay is not None:
            try:
                relay(unit.deliveries)
            except Exception:  # noqa: BLE001 - committed: the sweep starts what was missed
                logger.exception("webhook deliveries not started; the sweep will")


def sql_unit(unit: UnitOfWork) -> SqlUnitOfWork:
    """``unit`` as the SQL stores need it: a SQL unit of work, or a room's unit of work
    (ADR 0051) in a transaction on one; a unit of work of another kind (a fake's) is a
    wiring mistake."""
    if not isinstance(unit, SqlUnitOfWork):
        inner = getattr(unit, "transaction", None)  # a room's unit: RuntimeError outside one
        if not isinstance(inner, SqlUnitOfWork):
            raise TypeError(f"a SQL store was given a {type(unit).__name__}, not a SqlUnitOfWork")
        return inner
    return unit


class UnitBound:
    """A store that writes in the unit of work it is bound to (ADR 0051): ``within(unit)``
    is a copy of it bound to ``unit``; the store itself, bound to none, reads the last
    commit and refuses to write."""

    _unit: UnitOfWork | None = None

    def within(self, unit: UnitOfWork) -> Self:
        bound = copy.copy(self)
        bound._unit = unit
        return bound

    def _writing(self) -> SqlUnitOfWork:
        """The SQL unit of work the store is bound to."""
        if self._unit is None:
            raise RuntimeError(
                f"{type(self).__name__} was asked to write outside a unit of work: use the "
                "one bound to it (`with uow:` ... `uow.<store>`), or `store.within(unit)`"
            )
        return sql_unit(self._unit)
