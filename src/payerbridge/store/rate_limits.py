"""The rate limits' shared buckets (``security.limits.Allowances``) in the database: one
row per subject and operation holding its arrival time (GCRA, ADR 0025).

A lease is one statement, an upsert whose update applies only when the bucket holds a
request, so two processes leasing at once each see the other's lease (PostgreSQL locks
the row; SQLite has one writer). A refused lease reads the arrival time, for the wait.
It is its own transaction, outside any unit of work: a lease is spent whether or not the
request then succeeds. Database errors propagate (the limit fails closed).

On PostgreSQL the lease is a single statement in autocommit (one round trip) that does
not wait for its commit to be flushed (``synchronous_commit`` off for it alone): 4 ms a
lease here otherwise. A crash of the database may forget the last fraction of a second
of leases, leaving those buckets that much fuller.

On SQLite the buckets are kept in a file of their own beside the database
(``<name>-rate-limits.db``), so that a lease never waits for the database's writers: a
member import holds the write lock for minutes, and reads went on through it before
leases existed. Every process on the data dir shares that file (a forked child drops the
connections it inherited); a lease is one statement in autocommit. Migration 0025's
table stays empty there.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text

from payerbridge.security.model import Lease, Rate
from payerbridge.store.driver_errors import translate_driver_error
from payerbridge.store.tables import rate_limits

__all__ = ["SqlAllowances"]

# How many requests the bucket holds now: ``burst`` less the intervals its arrival time
# is ahead of now (a hair over, as ``security.limits.lease_tokens`` counts).
_AVAILABLE = {
    "postgresql": "(:burst - (GREATEST(rate_limits.tat, :now) - :now) / :interval + 1e-9)",
    "sqlite": "(:burst - (MAX(rate_limits.tat, :now) - :now) / :interval + 1e-9)",
}
_GRANTED = {  # min(wanted, floor(available)); available is at least 1 where it is used
    "postgresql": f"LEAST(:wanted, FLOOR({_AVAILABLE['postgresql']})::integer)",
    "sqlite": f"MIN(:wanted, CAST({_AVAILABLE['sqlite']} AS INTEGER))",
}
_BASE = {
    "postgresql": "GREATEST(rate_limits.tat, :now)",
    "sqlite": "MAX(rate_limits.tat, :now)",
}
# The row a bucket never used starts as: full, less this lease.
_FRESH = {
    # Selected from the CTE that turns off waiting for the flush, so that it runs first.
    "postgresql": (
        "WITH no_wait AS (SELECT set_config('synchronous_commit', 'off', true)) "
        f"INSERT INTO {rate_limits.name} (subject, operation, tat, leased) "
        "SELECT :subject, :operation, :now + :wanted * :interval, :wanted FROM no_wait "
    ),
    "sqlite": (
        f"INSERT INTO {rate_limits.name} (subject, operation, tat, leased) "
        "VALUES (:subject, :operation, :now + :wanted * :interval, :wanted) "
    ),
}


def _lease_sql(dialect: str) -> str:
    granted = _GRANTED[dialect]
    return (
        f"{_FRESH[dialect]}"
        "ON CONFLICT (subject, operation) DO UPDATE SET "
        f"leased = {granted}, tat = {_BASE[dialect]} + :interval * {granted} "
        f"WHERE {_AVAILABLE[dialect]} >= 1 "
        "RETURNING leased, tat"
    )


_TAT = text(
    f"SELECT tat FROM {rate_limits.name} WHERE subject = :subject AND operation = :operation"
)
_FORGET = text(f"DELETE FROM {rate_limits.name} WHERE tat <= :now")
# A subject's buckets and those of the subjects it heads (``<subject>@<more>``).
_FORGET_SUBJECT = text(
    f"DELETE FROM {rate_limits.name} WHERE subject = :subject OR subject LIKE :headed"
)


class SqlAllowances:
    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect.name
        # Autocommit: each statement its own transaction (one round trip, and on SQLite
        # the upsert alone takes the file's lock, briefly).
        self._engine = (
            _side_file(engine)
            if dialect == "sqlite"
            else engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._lease = text(_lease_sql(dialect))

    def lease(self, subject: str, operation: str, rate: Rate, wanted: int, *, now: float) -> Lease:
        """Up to ``wanted`` requests of the shared bucket (``wanted`` is at most the
        burst: a bucket never used holds the whole burst)."""
        wanted = max(1, min(wanted, rate.burst))
        keys = {"subject": subject[:300], "operation": operation[:200]}
        values = {
            **keys,
            "now": float(now),
            "wanted": wanted,
            "interval": rate.interval,
            "burst": rate.burst,
        }
        with self._engine.connect() as connection:
            row = connection.execute(self._lease, values).first()
            if row is not None:
                return Lease(int(row.leased), float(row.tat))
            tat = connection.execute(_TAT, keys).scalar_one()
        return Lease(0, max(float(tat), now))

    def forget_idle(self, *, now: float) -> int:
        with self._engine.connect() as connection:
            return connection.execute(_FORGET, {"now": float(now)}).rowcount

    def forget_subject(self, subject: str) -> int:
        """Fill again every bucket of ``subject`` and of the subjects it heads
        (``<subject>@...``): an operator's account unlocked (ADR 0046). A process that
        saw a bucket empty keeps refusing until the refill it computed (one interval)."""
        values = {"subject": subject[:300], "headed": f"{subject[:290]}@%"}
        with self._engine.connect() as connection:
            return connection.execute(_FORGET_SUBJECT, values).rowcount


_SIDE_TABLE = text(
    f"CREATE TABLE IF NOT EXISTS {rate_limits.name} (subject VARCHAR(300) NOT NULL, "
    "operation VARCHAR(200) NOT NULL, tat FLOAT NOT NULL, leased INTEGER NOT NULL, "
    "PRIMARY KEY (subject, operation))"
)


def _side_file(engine: Engine) -> Engine:
    """The engine of the buckets' own SQLite file beside ``engine``'s database."""
    database = Path(str(engine.url.database)).resolve()
    path = database.with_name(f"{database.stem}-rate-limits.db")
    side = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": 30, "check_same_thread": False, "isolation_level": None},
    )
    # A forked child opens connections of its own (a connection must not cross a fork).
    engine_ref = weakref.ref(side)
    os.register_at_fork(after_in_child=lambda: _forget_pool(engine_ref))
    event.listen(side, "connect", _side_pragmas)
    event.listen(side, "handle_error", translate_driver_error)
    with side.connect() as connection:
        connection.execute(_SIDE_TABLE)
    return side


def _forget_pool(engine_ref: weakref.ReferenceType[Engine]) -> None:
    engine = engine_ref()
    if engine is not None:
        engine.dispose(close=False)


def _side_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
