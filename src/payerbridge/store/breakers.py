"""Circuit-breaker state per partner endpoint, and each partner's rate, shared by every
worker through the database.

Writes run in the unit of work the store is bound to (``within``, ADR 0051): ``lock``
holds the endpoint's row (``FOR UPDATE`` on PostgreSQL; SQLite transactions are
immediate) until the unit ends, so the use case
(``exchange/calls/outbound.py``) applies the pure transition of ``exchange.calls.breaker`` and
``save``s it, with the audit event of a change of status, in that one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from payerbridge.exchange.model import BreakerState, BreakerStatus
from payerbridge.routing.model import RateLimit
from payerbridge.store.dbapi import read_row
from payerbridge.store.tables import partner_breakers, partner_rates
from payerbridge.store.unit_of_work import UnitBound
from payerbridge.types import PartnerId

__all__ = ["SqlBreakerStore"]


def _state(row: Any) -> BreakerState:
    if row is None:
        return BreakerState()
    return BreakerState(
        status=BreakerStatus(row.status),
        consecutive_failures=row.consecutive_failures,
        open_until=row.open_until,
        probe_until=row.probe_until,
    )


def _columns(partner_id: PartnerId, state: BreakerState, at: datetime) -> dict[str, Any]:
    return {
        "partner_id": partner_id,
        "status": state.status.value,
        "consecutive_failures": state.consecutive_failures,
        "open_until": state.open_until,
        "probe_until": state.probe_until,
        "updated_at": at,
    }


def _locked(
    connection: Connection, table: Table, key: str, value: str, fresh: dict[str, Any]
) -> Any:
    """The row of ``table`` whose ``key`` is ``value``, locked until the transaction ends;
    inserted as ``fresh`` first when there is none (another worker's insert of it, at the
    same moment, wins and is locked instead)."""
    column = table.c[key]
    locked = select(table).where(column == value).with_for_update()
    row = connection.execute(locked).first()
    if row is None:
        module = postgresql if connection.dialect.name == "postgresql" else sqlite
        insert = module.insert(table).values({key: value, **fresh})
        connection.execute(insert.on_conflict_do_nothing(index_elements=[column]))
        row = connection.execute(locked).first()
    return row


# How long this process trusts a healthy breaker it read: the route decision and each
# call check the endpoint's breaker, three reads per exchange, which at 100 exchanges/s
# re-read the same row hundreds of times a second. A breaker another worker opens
# meanwhile holds this process's calls back at most this much later (and is shown by
# this process that much later); those calls fail and are recorded as they would be
# without the breaker. Any write of this process's drops what it trusted.
_HEALTHY_TRUSTED_SECONDS = 0.5


class SqlBreakerStore(UnitBound):
    def __init__(
        self,
        engine: Engine,
        *,
        reader: Engine | None = None,
        healthy_trusted_seconds: float = _HEALTHY_TRUSTED_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._reader = reader or engine  # reads never take SQLite's write lock
        self._trusted = healthy_trusted_seconds
        self._monotonic = monotonic
        self._healthy_until: dict[str, float] = {}  # endpoint -> monotonic()

    def get(self, endpoint: str) -> BreakerState:
        """As last recorded; a breaker this process found healthy within the trusted
        time is not read again (the route decision and every call ask for it)."""
        if self._healthy_until.get(endpoint, 0.0) > self._monotonic():
            return BreakerState()
        state = _state(read_row(self._engine, partner_breakers, "endpoint", endpoint))
        if state == BreakerState():
            self._healthy_until[endpoint] = self._monotonic() + self._trusted
        return state

    def lock(self, endpoint: str, partner_id: PartnerId, *, at: datetime) -> BreakerState:
        """The endpoint's breaker, its row held against every other writer until the unit
        ends (recorded closed at ``at`` if it never was)."""
        self._healthy_until.pop(endpoint, None)
        fresh = _columns(partner_id, BreakerState(), at)
        connection = self._writing().connection
        return _state(_locked(connection, partner_breakers, "endpoint", endpoint, fresh))

    def save(
        self,
        endpoint: str,
        partner_id: PartnerId,
        state: BreakerState,
        *,
        at: datetime,
    ) -> None:
        """The endpoint's breaker as ``state``; its row ``lock``ed in the unit first."""
        self._healthy_until.pop(endpoint, None)
        self._writing().connection.execute(
            partner_breakers.update()
            .where(partner_breakers.c.endpoint == endpoint)
            .values(**_columns(partner_id, state, at))
        )

    def admit_rate(
        self, partner_id: PartnerId, limit: RateLimit, *, now: datetime
    ) -> datetime | None:
        """Take the partner's next turn under its rate limit, for every worker at once:
        None when a call may go now (the turn is taken), else when one may. A partner
        never called before starts due now, as it would without a row."""
        connection = self._writing().connection
        row = _locked(connection, partner_rates, "partner_id", partner_id, {"due_at": now})
        wait, due = limit.admit(row.due_at, now)
        if wait is not None:
            return wait
        connection.execute(
            partner_rates.update()
            .where(partner_rates.c.partner_id == partner_id)
            .values(due_at=due)
        )
        return None

    def unhealthy(self) -> list[tuple[str, PartnerId, BreakerState]]:
        """Every endpoint whose breaker is not closed, with its partner (a handful of rows:
        one per endpoint, and only those in trouble)."""
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(partner_breakers).where(
                    partner_breakers.c.status != BreakerStatus.CLOSED.value
                )
            ).all()
        return [(row.endpoint, PartnerId(row.partner_id), _state(row)) for row in rows]

    def all(self) -> dict[str, BreakerState]:
        with self._reader.connect() as connection:
            rows = connection.execute(select(partner_breakers)).all()
        return {row.endpoint: _state(row) for row in rows}
