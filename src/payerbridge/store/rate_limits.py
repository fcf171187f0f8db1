"""The rate limits' shared buckets (``security.limits.Allowances``) in the database: one
row per subject and operation holding its arrival time (GCRA, ADR 0025).

A lease is one statement, an upsert whose update applies only when the bucket holds a
request, so two processes leasing at once each see the other's lease (PostgreSQL locks
the row; SQLite has one writer). A refused lease reads the arrival time, for the wait.
Its own short transaction, outside any unit of work: a lease is spent whether or not the
request then succeeds. Database errors propagate (the limit fails closed).
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from payerbridge.security.limits import Lease, Rate
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


def _lease_sql(dialect: str) -> str:
    granted = _GRANTED[dialect]
    return (
        f"INSERT INTO {rate_limits.name} (subject, operation, tat, leased) "
        "VALUES (:subject, :operation, :now + :wanted * :interval, :wanted) "
        "ON CONFLICT (subject, operation) DO UPDATE SET "
        f"leased = {granted}, tat = {_BASE[dialect]} + :interval * {granted} "
        f"WHERE {_AVAILABLE[dialect]} >= 1 "
        "RETURNING leased, tat"
    )


_TAT = text(
    f"SELECT tat FROM {rate_limits.name} WHERE subject = :subject AND operation = :operation"
)
_FORGET = text(f"DELETE FROM {rate_limits.name} WHERE tat <= :now")


class SqlAllowances:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lease = text(_lease_sql(engine.dialect.name))

    def lease(self, subject: str, operation: str, rate: Rate, wanted: int, *, now: float) -> Lease:
        """Up to ``wanted`` requests of the shared bucket (``wanted`` is at most the
        burst: a bucket never used holds the whole burst)."""
        wanted = max(1, min(wanted, rate.burst))
        keys = {"subject": subject[:300], "operation": operation[:200]}
        with self._engine.begin() as connection:
            row = connection.execute(
                self._lease,
                {
                    **keys,
                    "now": float(now),
                    "wanted": wanted,
                    "interval": rate.interval,
                    "burst": rate.burst,
                },
            ).first()
            if row is not None:
                return Lease(int(row.leased), float(row.tat))
            tat = connection.execute(_TAT, keys).scalar_one()
        return Lease(0, max(float(tat), now))

    def forget_idle(self, *, now: float) -> int:
        with self._engine.begin() as connection:
            return connection.execute(_FORGET, {"now": float(now)}).rowcount
