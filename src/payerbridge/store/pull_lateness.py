"""The rule of a standing pull left late (ADR 0040), in SQL, written once: the console
marks a page's schedules by it (``SqlPullSchedules.lateness_of``) and
``payerbridge_pull_schedules_overdue`` counts by it (``store.readings``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, true

from payerbridge.exchange.model import PullStatus
from payerbridge.metrics.model import PULL_OVERDUE_AFTER, PULL_WAITING_STATES
from payerbridge.store.tables import exchanges, pull_schedules

__all__ = ["WITH_LAST_PULL", "is_past_due", "lateness"]

_T = pull_schedules
# A schedule with its last pull, joined by key: none when it has none yet, or it is gone.
_LAST = exchanges.alias("last_pull")
WITH_LAST_PULL = _T.outerjoin(_LAST, _LAST.c.id == _T.c.last_exchange_id)


def is_past_due(now: datetime) -> ColumnElement[bool]:
    """Active and due more than ``PULL_OVERDUE_AFTER`` ago: what ``ix_pull_schedules_due``
    finds (a few rows at most while the upkeep sweep runs)."""
    return and_(_T.c.status == PullStatus.ACTIVE.value, _T.c.next_due_at < now - PULL_OVERDUE_AFTER)


def lateness(now: datetime) -> ColumnElement[str | None]:
    """Where a schedule stands against its due time, over ``WITH_LAST_PULL``: NULL when
    not past due (``is_past_due``); ``pulling`` when it awaits its last pull and that
    still runs or waits for a reviewer (``PULL_WAITING_STATES``: the sweep rightly
    waits); else ``overdue`` (the sweep has not acted on it, or fails on it: its last
    pull gone)."""
    past_due = is_past_due(now)
    waiting = and_(_T.c.awaiting_pull == true(), _LAST.c.state.in_(sorted(PULL_WAITING_STATES)))
    return case((and_(past_due, waiting), "pulling"), (past_due, "overdue"))
