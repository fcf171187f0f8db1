"""Where an obligation row stands as of now, as a SQL expression, so that the compliance
report counts in the database rather than in memory (ADR 0037, "Obligation rows and the
report").

The rule is ``compliance.clocks.standing_now`` (``ObligationSet.standing``); this is
the same rule written for SQLite and PostgreSQL, and a property test holds the two equal
(tests/integration/test_clock_standing.py):

- closed (an opt-in revoked, a member gone, as written): ``closed``;
- no due time: ``not_started``;
- done: ``met`` when done by its due time, else ``missed``;
- not done: ``missed`` once now is past its due time; ``at_risk`` when now is within the
  obligation's warning before it (``risk``: the span before due, per obligation; one not
  named is never at risk); else ``pending``.

``now`` and ``now + warning`` are bound as timestamps: no date arithmetic in SQL, so each
backend compares instants as the column type stores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, literal

from payerbridge.compliance.model import Standing
from payerbridge.store.compliance_tables import obligation_clocks
from payerbridge.store.tables import UtcDateTime

__all__ = ["standing_sql", "window_sql"]

_T = obligation_clocks


def standing_sql(now: datetime, risk: Mapping[str, timedelta]) -> ColumnElement[str]:
    """The row's standing at ``now`` (a ``Standing`` value); ``risk``: how long before its
    due time a row of each obligation counts as at risk (``ObligationSet.risk_windows``)."""
    due, done = _T.c.due_at, _T.c.done_at
    met_or_missed = case((done <= due, _value(Standing.MET)), else_=_value(Standing.MISSED))
    whens: list[tuple[ColumnElement[bool], ColumnElement[str]]] = [
        (_T.c.standing == _value(Standing.CLOSED), _value(Standing.CLOSED)),
        (due.is_(None), _value(Standing.NOT_STARTED)),
        (done.is_not(None), met_or_missed),
        (due < _instant(now), _value(Standing.MISSED)),
    ]
    if risk:  # ``now >= due - warning``: due by ``now + warning``, the obligation's own
        until = {name: _instant(now + span) for name, span in sorted(risk.items())}
        whens.append((due <= case(until, value=_T.c.obligation), _value(Standing.AT_RISK)))
    return case(*whens, else_=_value(Standing.PENDING))


def window_sql(start: datetime, end: datetime) -> ColumnElement[bool]:
    """The rows started in [start, end)."""
    return and_(_T.c.started_at >= _instant(start), _T.c.started_at < _instant(end))


def _instant(at: datetime) -> ColumnElement[datetime]:
    return literal(at, UtcDateTime())


def _value(standing: Standing) -> ColumnElement[str]:
    return literal(standing.value)
