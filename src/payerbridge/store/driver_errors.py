"""The database drivers' errors as the store's own (``StoreConflict``, ``StoreUnavailable``).

DB-API statements raise the driver's errors (``sqlite3``, ``psycopg``); SQLAlchemy wraps
them only for what runs through it. Both become ours at the store's edge: in the unit of
work, in the DB-API cursors, and in every engine's ``handle_error`` hook for Core. So
nothing above the store knows which database runs underneath. The texts stay generic: a
driver's message can quote the values of a key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import exc
from sqlalchemy.engine import ExceptionContext

from payerbridge.errors import PayerBridgeError, StoreConflict, StoreUnavailable

__all__ = ["DRIVER_ERRORS", "store_error", "translate_driver_error", "translated_errors"]

DRIVER_ERRORS = (
    psycopg.IntegrityError,
    psycopg.OperationalError,
    sqlite3.IntegrityError,
    sqlite3.OperationalError,
)
# SQLite's operational errors that pass: busy or locked past the busy timeout, I/O, the
# file not openable just now. The rest (no such table, say) are mistakes, not weather.
_SQLITE_TRANSIENT = frozenset(
    (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN)
)


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, psycopg.OperationalError):  # the connection or the server
        return True
    if isinstance(error, sqlite3.OperationalError):
        code = getattr(error, "sqlite_errorcode", None)
        if code is None:  # raised by us (the writers' lock), not by SQLite
            return "locked" in str(error)
        return code & 0xFF in _SQLITE_TRANSIENT
    return False


def store_error(error: BaseException) -> PayerBridgeError | None:
    """Ours for a driver's error (SQLAlchemy's wrapping of one included), or None."""
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        error = error.orig
    if isinstance(error, exc.DisconnectionError):  # the pool found its connections gone
        return StoreUnavailable("the database is not answering just now; try again shortly")
    if isinstance(error, (psycopg.IntegrityError, sqlite3.IntegrityError)):
        return StoreConflict("a record with the same unique key already exists")
    if _is_transient(error):
        return StoreUnavailable("the database is not answering just now; try again shortly")
    return None


@contextmanager
def translated_errors() -> Iterator[None]:
    """Raise ours for a driver's error raised in the block."""
    try:
        yield
    except (*DRIVER_ERRORS, exc.DBAPIError, exc.DisconnectionError) as error:
        ours = store_error(error)
        if ours is None:
            raise
        raise ours from error


def translate_driver_error(context: ExceptionContext) -> PayerBridgeError | None:
    """The ``handle_error`` hook: ours for what a Core statement raised (SQLAlchemy still
    invalidates a dropped connection)."""
    return store_error(context.original_exception)
