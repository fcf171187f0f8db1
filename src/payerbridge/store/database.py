"""Engines and schema migrations for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

__all__ = ["create_db_engine", "migrate"]

logger = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).parent / "migrations"


def create_db_engine(url: str, *, pool_size: int = 10, reads_only: bool = False) -> Engine:
    """An engine tuned for the backend: WAL, a busy timeout and immediate transactions on SQLite.

    ``reads_only`` (SQLite): an engine for read-only hot paths whose transactions are
    plain deferred ones, so concurrent readers do not queue for the write lock (WAL
    readers see the last committed state). Never write through it."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False, "isolation_level": None},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_deferred if reads_only else _begin_immediate)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    # Take SQLite's write lock when a transaction starts, not when it first writes:
    # a read-then-write transaction racing another writer would otherwise fail with
    # SQLITE_BUSY at once instead of waiting out the busy timeout. (The driver runs in
    # autocommit mode so that this BEGIN is the only one issued.)
    connection.exec_driver_sql("BEGIN IMMEDIATE")


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
