"""The obligation rows (``compliance.clocks``) in SQL: written in the driver's own SQL on
the caller's unit of work (an exchange step's and a ``$member-match``'s units run on the
DB-API path, pipelined on PostgreSQL), none of the writes reading first; read with Core
for the report: counted in the database (``tally``, the standing as of now in SQL by
``store.clock_standing``), the rows of a standing listed (``standing_rows``), and every
row streamed in keyset pages (``started_between``).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, or_, select
from sqlalchemy.engine import Dialect

from payerbridge.compliance.model import (
    ANSWER_WITHIN,
    ASKING,
    ObligationClock,
    Standing,
    StandingQuery,
    Subject,
    SubjectType,
    Tally,
)
from payerbridge.compliance.ports import ObligationTerms
from payerbridge.identity.matching.model import SINGLE_EXCHANGE_POLICY
from payerbridge.store.clock_closing import close_rows, of_consent
from payerbridge.store.clock_standing import standing_sql, window_sql
from payerbridge.store.compliance_tables import obligation_clocks
from payerbridge.store.dbapi import DialectSql
from payerbridge.store.tables import UtcDateTime, identity_decisions
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork

__all__ = ["SqlObligationClocks"]

_T = obligation_clocks
_COLUMNS = tuple(str(column.name) for column in _T.c)
_TIMESTAMPS = tuple(str(c.name) for c in _T.c if isinstance(c.type, UtcDateTime))
_KEEP = " ON CONFLICT (subject_id, obligation, subject_type) DO NOTHING"
_SUBJECT = "subject_id = :subject_id AND subject_type = :subject_type"


class _ClockSql(DialectSql):
    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self.start = self.insert(_T, _COLUMNS, _KEEP)
        partner = (
            f"(SELECT partner_id FROM {_T.name} WHERE subject_id = :of_id "
            "AND subject_type = :of_type AND partner_id IS NOT NULL "
            "ORDER BY started_at LIMIT 1)"
        )
        values = ", ".join(f":{c}" if c != "partner_id" else partner for c in _COLUMNS)
        self.start_after = self.sql(
            f"INSERT INTO {_T.name} ({', '.join(_COLUMNS)}) VALUES ({values}){_KEEP}"
        )
        # Done at ``done_at``: met by its due time, else missed.
        done = (
            f"UPDATE {_T.name} SET done_at = :done_at, updated_at = :done_at, standing = "
            "CASE WHEN due_at IS NULL OR due_at >= :done_at THEN 'met' ELSE 'missed' END "
            f"WHERE {_SUBJECT} AND done_at IS NULL AND "
        )
        self.settle = self.sql(f"{done}obligation = :obligation")
        asking = ", ".join(f"'{obligation}'" for obligation in ASKING)  # ids, not input
        self.settle_asked = self.sql(f"{done}obligation IN ({asking})")
        self.hand_over = self.sql(
            f"UPDATE {_T.name} SET subject_id = :to_id, subject_type = :to_type "
            f"WHERE {_SUBJECT} AND done_at IS NULL"
        )
        self.note = self.sql(
            f"UPDATE {_T.name} SET reason = :reason, updated_at = :at "
            f"WHERE {_SUBJECT} AND done_at IS NULL"
        )
        # Closed: no longer owed; done_at says when, the standing stays ``closed``.
        self.close = self.sql(
            f"UPDATE {_T.name} SET standing = '{Standing.CLOSED.value}', done_at = :at, "
            f"reason = :reason, updated_at = :at WHERE {_SUBJECT} AND done_at IS NULL"
        )

    def row(self, clock: ObligationClock) -> dict[str, Any]:
        values = {
            "id": clock.id,
            "obligation": clock.obligation,
            "obligation_version": clock.obligation_version,
            "subject_type": clock.subject.type.value,
            "subject_id": clock.subject.id,
            "partner_id": clock.partner_id,
            "started_at": clock.started_at,
            "due_at": clock.due_at,
            "done_at": clock.done_at,
            "standing": clock.standing.value,
            "reason": clock.reason,
            "updated_at": clock.updated_at,
        }
        return self.bound(values, _TIMESTAMPS)


def _subject(subject: Subject) -> dict[str, str]:
    return {"subject_id": subject.id, "subject_type": subject.type.value}


class SqlObligationClocks:
    """``ClockLedger`` and ``ClockReader`` (``compliance.clocks``)."""

    def __init__(
        self,
        engine: Engine,
        *,
        reader: Engine | None = None,
        obligations: ObligationTerms | None = None,
    ) -> None:
        self._reader = reader or engine
        self._sql = _ClockSql.of(engine.dialect)
        self._obligations = obligations  # to read the requests answered at once

    def start(self, unit: UnitOfWork, clock: ObligationClock) -> None:
        sql_unit(unit).cursor().execute(self._sql.start, self._sql.row(clock))

    def start_after(self, unit: UnitOfWork, clock: ObligationClock) -> None:
        row = self._sql.row(clock)
        del row["partner_id"]
        of = {"of_id": clock.subject.id, "of_type": clock.subject.type.value}
        sql_unit(unit).cursor().execute(self._sql.start_after, {**row, **of})

    def hand_over(self, unit: UnitOfWork, source: Subject, target: Subject) -> None:
        values = {**_subject(source), "to_id": target.id, "to_type": target.type.value}
        sql_unit(unit).cursor().execute(self._sql.hand_over, values)

    def settle_asked(self, unit: UnitOfWork, subject: Subject, *, done_at: datetime) -> None:
        values = {**_subject(subject), "done_at": self._sql.timestamp(done_at)}
        sql_unit(unit).cursor().execute(self._sql.settle_asked, values)

    def settle(
        self, unit: UnitOfWork, obligation: str, subject: Subject, *, done_at: datetime
    ) -> None:
        values = {**_subject(subject), "obligation": obligation}
        values["done_at"] = self._sql.timestamp(done_at)
        sql_unit(unit).cursor().execute(self._sql.settle, values)

    def note(self, unit: UnitOfWork, subject: Subject, reason: str, *, at: datetime) -> None:
        values = {**_subject(subject), "reason": reason[:64], "at": self._sql.timestamp(at)}
        sql_unit(unit).cursor().execute(self._sql.note, values)

    def close(self, unit: UnitOfWork, subject: Subject, reason: str, *, at: datetime) -> None:
        values = {**_subject(subject), "reason": reason[:64], "at": self._sql.timestamp(at)}
        sql_unit(unit).cursor().execute(self._sql.close, values)

    def close_under_consent(
        self, unit: UnitOfWork, consent_id: str, reason: str, *, at: datetime
    ) -> None:
        close_rows(sql_unit(unit).connection, of_consent(consent_id), reason, at=at)

    def tally(
        self, start: datetime, end: datetime, *, now: datetime, risk: Mapping[str, timedelta]
    ) -> dict[Tally, int]:
        """How many rows started in [start, end) stand where at ``now``, counted in the
        database by obligation, subject type, standing, reason code and whether done; the
        requests answered at once among them (met, no reason)."""
        inner = (
            select(
                _T.c.obligation,
                _T.c.subject_type,
                standing_sql(now, risk).label("standing"),
                _T.c.reason,
                _T.c.done_at.is_not(None).label("done"),
            )
            .where(window_sql(start, end))
            .subquery()
        )
        c = inner.c
        keys = (c.obligation, c.subject_type, c.standing, c.reason, c.done)
        query = select(*keys, func.count()).group_by(*keys)
        counted: dict[Tally, int] = {}
        with self._reader.connect() as connection:
            for obligation, subject, standing, reason, done, count in connection.execute(query):
                key = (obligation, SubjectType(subject), Standing(standing), reason, bool(done))
                counted[key] = count
            if self._obligations is not None:
                answered_at_once = select(func.count()).where(*_answered_at_once(start, end))
                answered = connection.execute(answered_at_once).scalar_one()
                if answered:
                    key = (ANSWER_WITHIN, SubjectType.REQUEST, Standing.MET, None, True)
                    counted[key] = counted.get(key, 0) + answered
        return counted

    def standing_rows(self, query: StandingQuery) -> list[ObligationClock]:
        """The rows ``query`` asks for (started in [start, end), standing at one of its
        standings at its ``now``), the earliest first, the first ``limit``."""
        start, end, now, risk = query.start, query.end, query.now, query.risk
        standings, obligation, limit = query.standings, query.obligation, query.limit
        subject_types = query.subject_types
        rows_of = select(_T).where(
            window_sql(start, end), standing_sql(now, risk).in_([s.value for s in standings])
        )
        if obligation is not None:
            rows_of = rows_of.where(_T.c.obligation == obligation)
        if subject_types is not None:
            rows_of = rows_of.where(_T.c.subject_type.in_([t.value for t in subject_types]))
        rows_of = rows_of.order_by(_T.c.started_at, _T.c.id).limit(limit)
        with self._reader.connect() as connection:
            rows = [_clock(row) for row in connection.execute(rows_of)]
        requests = subject_types is None or SubjectType.REQUEST in subject_types
        if Standing.MET in standings and obligation in (None, ANSWER_WITHIN) and requests:
            answered = self._answered(start, end, limit=limit)
            rows = list(heapq.merge(rows, answered, key=_order))[:limit]
        return rows

    def started_between(
        self, start: datetime, end: datetime, *, obligation: str | None = None, page: int = 1000
    ) -> Iterator[ObligationClock]:
        """The rows started in [start, end) (of ``obligation`` only, when given), the
        earliest first, read ``page`` at a time (keyset pages on (started_at, id), each
        on a connection of its own): an export of any size holds one page."""
        only = [] if obligation is None else [_T.c.obligation == obligation]

        def rows(after: tuple[datetime, str] | None) -> list[ObligationClock]:
            query = select(_T).where(*_keyset(after, start, end, _T.c.started_at, _T.c.id), *only)
            with self._reader.connect() as connection:
                ordered = query.order_by(_T.c.started_at, _T.c.id).limit(page)
                return [_clock(row) for row in connection.execute(ordered)]

        found = _paged(rows, page)
        if obligation not in (None, ANSWER_WITHIN) or self._obligations is None:
            return found
        answered = _paged(lambda after: self._answered(start, end, after=after, limit=page), page)
        return heapq.merge(found, answered, key=_order)

    def subject(self, subject: Subject) -> list[ObligationClock]:
        """The subject's rows (tests and support)."""
        query = select(_T).where(
            _T.c.subject_id == subject.id, _T.c.subject_type == subject.type.value
        )
        with self._reader.connect() as connection:
            return [_clock(row) for row in connection.execute(query.order_by(_T.c.started_at))]

    def _answered(
        self,
        start: datetime,
        end: datetime,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> list[ObligationClock]:
        """The ``$member-match`` requests answered at once in [start, end), as met rows of
        the one-business-day answer, the earliest first: each one's identity decision says
        when (no row is written for them: one per request cost the online path about a
        tenth of its throughput, docs/benchmarks/data-lifecycle.md). A request sent to
        review has a row of its own, kept until its case is decided."""
        obligations = self._obligations
        if obligations is None or limit == 0:
            return []
        d = identity_decisions.c
        query = (
            select(d.id, d.decided_at)
            .where(*_answered_at_once(start, end, after))
            .order_by(d.decided_at, d.id)
            .limit(limit)
        )
        with self._reader.connect() as connection:
            found = connection.execute(query).all()
        return [
            ObligationClock(
                id=decision_id,
                obligation=ANSWER_WITHIN,
                obligation_version=obligations.version,
                subject=Subject(SubjectType.REQUEST, decision_id),
                partner_id=None,
                started_at=at,
                due_at=obligations.due(ANSWER_WITHIN, {"request_received": at}),
                done_at=at,
                standing=Standing.MET,
                reason=None,
                updated_at=at,
            )
            for decision_id, at in found
        ]


def _answered_at_once(
    start: datetime, end: datetime, after: tuple[datetime, str] | None = None
) -> list[ColumnElement[bool]]:
    """The identity decisions of the single-exchange policy in [start, end) (after
    ``after``, a page's last) not sent to review: the ``$member-match`` requests answered
    at once (a bulk job's are not)."""
    d = identity_decisions.c
    return [
        d.outcome != "review",
        d.policy_version.like(f"{SINGLE_EXCHANGE_POLICY}-%"),
        *_keyset(after, start, end, d.decided_at, d.id),
    ]


def _keyset(
    after: tuple[datetime, str] | None,
    start: datetime,
    end: datetime,
    column: ColumnElement[datetime],
    key: ColumnElement[str],
) -> list[ColumnElement[bool]]:
    """The rows with ``column`` in [start, end) that come after ``after`` in the order
    (column, key): one range on ``column``, from the later of the two, so that the index
    is searched from where the last page ended."""
    lower = start if after is None else max(start, after[0])
    found = [column >= lower, column < end]
    if after is not None:
        found.append(or_(column > after[0], key > after[1]))
    return found


def _paged(
    read: Callable[[tuple[datetime, str] | None], list[ObligationClock]], size: int
) -> Iterator[ObligationClock]:
    """Each row of the pages ``read`` gives (``size`` rows at most), the next asked after
    the last row of the one before, until one comes back short."""
    after: tuple[datetime, str] | None = None
    while True:
        page = read(after)
        yield from page
        if len(page) < size:
            return
        after = (page[-1].started_at, page[-1].id)


def _order(clock: ObligationClock) -> tuple[datetime, str]:
    return (clock.started_at, clock.id)


def _clock(row: Any) -> ObligationClock:
    return ObligationClock(
        id=row.id,
        obligation=row.obligation,
        obligation_version=row.obligation_version,
        subject=Subject(SubjectType(row.subject_type), row.subject_id),
        partner_id=row.partner_id,
        started_at=row.started_at,
        due_at=row.due_at,
        done_at=row.done_at,
        standing=Standing(row.standing),
        reason=row.reason,
        updated_at=row.updated_at,
    )
