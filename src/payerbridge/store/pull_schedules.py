"""The standing pulls in SQL (``pull_schedules``): their rows, and the request each
sends, sealed under the data keys (ADR 0039) and cut when the schedule stops; and which
of a page's are late (``store.pull_lateness``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, func, select, update

from payerbridge.errors import NotFound
from payerbridge.exchange.model import PullKind, PullSchedule, PullStatus
from payerbridge.store.data_keys import DataKeyring
from payerbridge.store.pull_lateness import WITH_LAST_PULL, is_past_due, lateness
from payerbridge.store.sealed_columns import PULL_REQUEST
from payerbridge.store.tables import pull_schedules
from payerbridge.store.unit_of_work import UnitBound

__all__ = ["SqlPullSchedules"]

_T = pull_schedules
_ROW = [c for c in _T.c if c.name != "request"]


class SqlPullSchedules(UnitBound):
    def __init__(self, engine: Engine, *, keyring: DataKeyring) -> None:
        self._engine = engine
        self._keyring = keyring

    def add(self, schedule: PullSchedule, request: dict[str, Any]) -> None:
        values = {c.name: getattr(schedule, c.name) for c in _ROW}
        values["kind"], values["status"] = schedule.kind.value, schedule.status.value
        values["request"] = self._keyring.seal(
            orjson.dumps(request), field=PULL_REQUEST, row_key=schedule.id
        )
        self._writing().connection.execute(_T.insert().values(**values))

    def get(self, schedule_id: str) -> PullSchedule:
        with self._engine.connect() as conn:
            row = conn.execute(select(*_ROW).where(_T.c.id == schedule_id)).first()
        if row is None:
            raise NotFound(f"pull schedule {schedule_id[:64]} does not exist")
        return _schedule(row)

    def all(
        self,
        *,
        status: PullStatus | None = None,
        client_id: str | None = None,
        limit: int | None = None,
    ) -> list[PullSchedule]:
        query = select(*_ROW).order_by(_T.c.created_at, _T.c.id).limit(limit)
        if status is not None:
            query = query.where(_T.c.status == status.value)
        if client_id is not None:
            query = query.where(_T.c.client_id == client_id)
        with self._engine.connect() as conn:
            return [_schedule(row) for row in conn.execute(query)]

    def due(self, now: datetime) -> list[PullSchedule]:
        query = (
            select(*_ROW)
            .where(_T.c.status == PullStatus.ACTIVE.value, _T.c.next_due_at <= now)
            .order_by(_T.c.next_due_at, _T.c.id)
        )
        with self._engine.connect() as conn:
            return [_schedule(row) for row in conn.execute(query)]

    def page(
        self,
        *,
        status: PullStatus | None = None,
        kind: PullKind | None = None,
        offset: int = 0,
        count: int = 50,
    ) -> tuple[int, list[PullSchedule]]:
        """The next due first (the most overdue at the top), then those due no more (the
        stopped), the newest first. The active ones alone are read in the order of
        ``ix_pull_schedules_due``; the others are sorted."""
        chosen = []
        if status is not None:
            chosen.append(_T.c.status == status.value)
        if kind is not None:
            chosen.append(_T.c.kind == kind.value)
        order = [_T.c.next_due_at, _T.c.created_at.desc(), _T.c.id]
        if status is not PullStatus.ACTIVE:  # a stopped schedule is due no more (NULL)
            order.insert(0, _T.c.next_due_at.is_(None))
        total = select(func.count()).select_from(_T).where(*chosen)
        rows = select(*_ROW).where(*chosen).order_by(*order).offset(offset).limit(count)
        with self._engine.connect() as conn:
            found = int(conn.execute(total).scalar_one())
            return found, [_schedule(row) for row in conn.execute(rows)]

    def lateness_of(self, schedule_ids: Sequence[str], now: datetime) -> dict[str, str]:
        """Of ``schedule_ids`` (a page's), those ``overdue`` or ``pulling`` at ``now``
        (``lateness``): one statement, each read by key with its last pull."""
        if not schedule_ids:
            return {}
        query = (
            select(_T.c.id, lateness(now))
            .select_from(WITH_LAST_PULL)
            .where(_T.c.id.in_(schedule_ids), is_past_due(now))
        )
        with self._engine.connect() as conn:
            return {schedule_id: mark for schedule_id, mark in conn.execute(query)}

    def request(self, schedule_id: str) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            sealed = conn.execute(select(_T.c.request).where(_T.c.id == schedule_id)).scalar()
        if sealed is None:
            return None
        opened = self._keyring.open(sealed, field=PULL_REQUEST, row_key=schedule_id)
        document: dict[str, Any] = orjson.loads(opened)
        return document

    def update(self, schedule_id: str, **values: Any) -> None:
        if values.get("status") == PullStatus.STOPPED.value:
            values["request"] = None  # a stopped schedule keeps no demographics
        self._writing().connection.execute(
            update(_T)
            .where(_T.c.id == schedule_id, _T.c.status == PullStatus.ACTIVE.value)
            .values(**values)
        )


def _schedule(row: Any) -> PullSchedule:
    fields = dict(row._mapping)
    fields["kind"], fields["status"] = PullKind(row.kind), PullStatus(row.status)
    return PullSchedule(**fields)
