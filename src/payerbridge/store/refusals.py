"""The counters of refused calls (``audit.refusals.RefusalCounts``, ADR 0045): one row per
client, operation, reason and window, counted and closed in the caller's unit of work.

A count is one upsert that adds to the window's row only while it is open (``closed_at``
NULL) and says whether it did (RETURNING); a window closed meanwhile (its event already
written) sends the refusal on to the next window. Closing is one UPDATE ... RETURNING of
the ended windows still open: on PostgreSQL it skips the rows another transaction holds
(``SKIP LOCKED``: a count in flight, or another closer), so closers never wait on a
refused call or on each other and close each window once; on SQLite writers take turns.
The statements run on the unit's DB-API cursor, as the ``$member-match`` path's do.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from payerbridge.audit.model import Refusal, RefusalWindow, window_of
from payerbridge.store.dbapi import DialectSql
from payerbridge.store.refusal_tables import audit_refusal_windows
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork

__all__ = ["SqlRefusalCounts"]

_TABLE = audit_refusal_windows.name
# A refusal whose window closed while it ran moves on a window at a time; more than this
# many closed in a row would mean a transaction older than the windows it spans.
_MOST_WINDOWS_ON = 1_000


class _RefusalSql(DialectSql):
    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self.count = self.sql(
            f"INSERT INTO {_TABLE} (client_id, operation, reason, window_start, window_end, "
            "count) VALUES (:client_id, :operation, :reason, :start, :end, :count) "
            "ON CONFLICT (client_id, operation, reason, window_start) DO UPDATE "
            f"SET count = {_TABLE}.count + excluded.count "
            f"WHERE {_TABLE}.closed_at IS NULL RETURNING id"
        )
        ended = (
            f"SELECT id FROM {_TABLE} WHERE closed_at IS NULL AND window_end <= :now "
            "ORDER BY window_end, id LIMIT :limit"
        )
        if self.is_postgres:
            ended += " FOR UPDATE SKIP LOCKED"
        self.close = self.sql(
            f"UPDATE {_TABLE} SET closed_at = :now WHERE id IN ({ended}) RETURNING "
            "id, client_id, operation, reason, window_start, window_end, count"
        )


_SQLITE = _RefusalSql(sqlite.dialect())
_POSTGRES = _RefusalSql(postgresql.psycopg.dialect())  # type: ignore[no-untyped-call]  # SQLAlchemy's dialect classes are untyped


class SqlRefusalCounts:
    """``RefusalCounts`` on the unit's transaction (stateless: one serves every unit)."""

    def count(self, unit: UnitOfWork, refusals: Sequence[Refusal], *, length: timedelta) -> None:
        sql_of = sql_unit(unit)
        sql = _POSTGRES if sql_of.is_postgres else _SQLITE
        cursor = sql_of.cursor()
        for counter, count in _grouped(refusals, length).items():
            _count_in_open_window(cursor, sql, counter, count, length)

    def take_ended(self, unit: UnitOfWork, *, now: datetime, limit: int) -> list[RefusalWindow]:
        sql_of = sql_unit(unit)
        sql = _POSTGRES if sql_of.is_postgres else _SQLITE
        cursor = sql_of.cursor()
        cursor.execute(sql.close, {"now": sql.timestamp(now), "limit": limit})
        rows = sorted(cursor.fetchall(), key=lambda row: (row[5], row[0]))
        return [
            RefusalWindow(
                client_id=row[1],
                operation=row[2],
                reason=row[3],
                start=_read(sql, row[4]),
                end=_read(sql, row[5]),
                count=int(row[6]),
            )
            for row in rows
        ]


def _grouped(
    refusals: Sequence[Refusal], length: timedelta
) -> dict[tuple[str, str, str, datetime], int]:
    """The refusals by client, operation, reason and window start: one upsert each (a
    bulk chunk's members count together)."""
    grouped: dict[tuple[str, str, str, datetime], int] = {}
    for refusal in refusals:
        start, _ = window_of(refusal.at, length)
        key = (refusal.client_id, refusal.operation, refusal.reason, start)
        grouped[key] = grouped.get(key, 0) + 1
    return grouped


def _count_in_open_window(
    cursor: Any,
    sql: _RefusalSql,
    counter: tuple[str, str, str, datetime],
    count: int,
    length: timedelta,
) -> None:
    """Add ``count`` to the counter (client, operation, reason, window start), or to the
    first window after it still open."""
    client_id, operation, reason, start = counter
    keys = {"client_id": client_id, "operation": operation, "reason": reason}
    for _ in range(_MOST_WINDOWS_ON):
        end = start + length
        params = {**keys, "start": sql.timestamp(start), "end": sql.timestamp(end)}
        cursor.execute(sql.count, {**params, "count": count})
        if cursor.fetchone() is not None:
            return
        start = end  # closed while this transaction ran: its event is written
    raise RuntimeError("no open refusal window found after a thousand closed ones")


def _read(sql: _RefusalSql, value: Any) -> datetime:
    read = sql.read_timestamp(value)
    assert read is not None
    return read
