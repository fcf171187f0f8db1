"""The obligation rows (``compliance.clocks``) in SQL: written in the driver's own SQL on
the caller's unit of work (an exchange step's and a ``$member-match``'s units run on the
DB-API path, pipelined on PostgreSQL), none of the writes reading first; read with Core
for the report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.engine import Dialect

from payerbridge.compliance.clocks import ObligationClock, Subject, SubjectType
from payerbridge.compliance.obligations import ANSWER_WITHIN, ASKING, ObligationSet, Standing
from payerbridge.identity.decision import SINGLE_EXCHANGE
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
        self.settle = self.sql(
            f"UPDATE {_T.name} SET done_at = :done_at, updated_at = :done_at, standing = "
            "CASE WHEN due_at IS NULL OR due_at >= :done_at THEN 'met' ELSE 'missed' END "
            f"WHERE {_SUBJECT} AND obligation = :obligation AND done_at IS NULL"
        )
        asking = ", ".join(f"'{obligation}'" for obligation in ASKING)  # ids, not input
        self.settle_asked = self.sql(
            f"UPDATE {_T.name} SET done_at = :done_at, updated_at = :done_at, standing = "
            "CASE WHEN due_at IS NULL OR due_at >= :done_at THEN 'met' ELSE 'missed' END "
            f"WHERE {_SUBJECT} AND done_at IS NULL AND obligation IN ({asking})"
        )
        self.hand_over = self.sql(
            f"UPDATE {_T.name} SET subject_id = :to_id, subject_type = :to_type "
            f"WHERE {_SUBJECT} AND done_at IS NULL"
        )
        self.note = self.sql(
            f"UPDATE {_T.name} SET reason = :reason, updated_at = :at "
            f"WHERE {_SUBJECT} AND done_at IS NULL"
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
        obligations: ObligationSet | None = None,
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

    def started_between(self, start: datetime, end: datetime) -> list[ObligationClock]:
        query = (
            select(_T)
            .where(_T.c.started_at >= start, _T.c.started_at < end)
            .order_by(_T.c.started_at, _T.c.id)
        )
        with self._reader.connect() as connection:
            rows = [_clock(row) for row in connection.execute(query)]
            if self._obligations is not None:
                rows += _answered_at_once(connection, self._obligations, start, end)
        return sorted(rows, key=lambda clock: (clock.started_at, clock.id))

    def subject(self, subject: Subject) -> list[ObligationClock]:
        """The subject's rows (tests and support)."""
        query = select(_T).where(
            _T.c.subject_id == subject.id, _T.c.subject_type == subject.type.value
        )
        with self._reader.connect() as connection:
            return [_clock(row) for row in connection.execute(query.order_by(_T.c.started_at))]


def _answered_at_once(
    connection: Connection, obligations: ObligationSet, start: datetime, end: datetime
) -> list[ObligationClock]:
    """The ``$member-match`` requests answered at once in [start, end), as met rows of
    the one-business-day answer: each one's identity decision says when (no row is
    written for them: one per request cost the online path about a tenth of its
    throughput, docs/benchmarks/data-lifecycle.md). A request sent to review has a row
    of its own, kept until its case is decided."""
    decisions = identity_decisions
    found = connection.execute(
        select(decisions.c.id, decisions.c.decided_at).where(
            decisions.c.decided_at >= start,
            decisions.c.decided_at < end,
            decisions.c.outcome != "review",
            decisions.c.policy_version.like(f"{SINGLE_EXCHANGE.name}-%"),
        )
    )
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
