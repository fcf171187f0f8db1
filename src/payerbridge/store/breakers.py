"""Circuit-breaker state per partner endpoint, shared by every worker through the database.

Each admission or outcome is one short transaction that locks the endpoint's row
(``FOR UPDATE`` on PostgreSQL; SQLite transactions are immediate), applies the pure
transition from ``exchange.breaker`` and, when the status changes, appends an audit
event in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import StoreConflict
from payerbridge.exchange.breaker import (
    Admission,
    BreakerState,
    BreakerStatus,
    admit,
    record_failure,
    record_success,
)
from payerbridge.routing.operations import RateLimit
from payerbridge.store.audit import append_audit
from payerbridge.store.dbapi import read_row
from payerbridge.store.tables import partner_breakers, partner_rates
from payerbridge.types import PartnerId

__all__ = ["SqlBreakerStore"]

_AUDIT_ACTION = {
    BreakerStatus.OPEN: "breaker.opened",
    BreakerStatus.HALF_OPEN: "breaker.half-opened",
    BreakerStatus.CLOSED: "breaker.closed",
}


def _state(row: Any) -> BreakerState:
    if row is None:
        return BreakerState()
    return BreakerState(
        status=BreakerStatus(row.status),
        consecutive_failures=row.consecutive_failures,
        open_until=row.open_until,
        probe_until=row.probe_until,
    )


# How long this process trusts a healthy breaker it read: the route decision and each
# call check the endpoint's breaker, three reads per exchange, which at 100 exchanges/s
# re-read the same row hundreds of times a second. A breaker another worker opens
# meanwhile holds this process's calls back at most this much later (and is shown by
# this process that much later); those calls fail and are recorded as they would be
# without the breaker. Any write of this process's drops what it trusted.
_HEALTHY_TRUSTED_SECONDS = 0.5


class SqlBreakerStore:
    def __init__(
        self,
        engine: Engine,
        *,
        reader: Engine | None = None,
        healthy_trusted_seconds: float = _HEALTHY_TRUSTED_SECONDS,
    ) -> None:
        self._engine = engine
        self._reader = reader or engine  # reads never take SQLite's write lock
        self._trusted = healthy_trusted_seconds
        self._healthy_until: dict[str, float] = {}  # endpoint -> time.monotonic()

    def admit(
        self, endpoint: str, partner_id: PartnerId, *, now: datetime, cooldown: timedelta
    ) -> Admission:
        if self._healthy_until.get(endpoint, 0.0) > time.monotonic():
            return Admission(True, BreakerState())
        current = self.get(endpoint)
        if current.status is BreakerStatus.CLOSED:  # the common case needs no write lock
            if current == BreakerState():
                self._healthy_until[endpoint] = time.monotonic() + self._trusted
            return Admission(True, current)
        admission: Admission | None = None

        def change(state: BreakerState) -> BreakerState:
            nonlocal admission
            admission = admit(state, now, cooldown)
            return admission.state

        self._update(endpoint, partner_id, now, change)
        assert admission is not None
        return admission

    def record(
        self,
        endpoint: str,
        partner_id: PartnerId,
        *,
        succeeded: bool,
        now: datetime,
        threshold: int,
        cooldown: timedelta,
        seen: BreakerState | None = None,
    ) -> BreakerState:
        """``seen``: the state the call was admitted under. A success admitted under a
        healthy breaker writes (and reads) nothing: failures that other calls recorded
        meanwhile are left to count, which can only open the breaker a call earlier."""
        healthy = BreakerState()
        if succeeded and (seen == healthy or self.get(endpoint) == healthy):
            return healthy  # healthy and staying so: nothing to write

        def change(state: BreakerState) -> BreakerState:
            if succeeded:
                return record_success(state)
            return record_failure(state, now, threshold=threshold, cooldown=cooldown)

        return self._update(endpoint, partner_id, now, change)

    def get(self, endpoint: str) -> BreakerState:
        """As last recorded; a breaker this process found healthy within the trusted
        time is not read again (the route decision asks for it on every exchange)."""
        if self._healthy_until.get(endpoint, 0.0) > time.monotonic():
            return BreakerState()
        return _state(read_row(self._engine, partner_breakers, "endpoint", endpoint))

    def admit_rate(
        self, partner_id: PartnerId, limit: RateLimit, *, now: datetime
    ) -> datetime | None:
        """Take the partner's next turn under its rate limit, for every worker at once:
        None when a call may go now (the turn is taken), else when one may."""
        for _ in range(2):  # a second pass only if another worker created the row first
            try:
                with self._engine.begin() as connection:
                    row = connection.execute(
                        select(partner_rates.c.due_at)
                        .where(partner_rates.c.partner_id == partner_id)
                        .with_for_update()
                    ).first()
                    wait, due = limit.admit(row.due_at if row else None, now)
                    if wait is not None:
                        return wait
                    if row is None:
                        connection.execute(
                            partner_rates.insert().values(partner_id=partner_id, due_at=due)
                        )
                    else:
                        connection.execute(
                            partner_rates.update()
                            .where(partner_rates.c.partner_id == partner_id)
                            .values(due_at=due)
                        )
                    return None
            except StoreConflict:
                continue
        raise RuntimeError("rate row kept changing under us")  # pragma: no cover

    def all(self) -> dict[str, BreakerState]:
        with self._reader.connect() as connection:
            rows = connection.execute(select(partner_breakers)).all()
        return {row.endpoint: _state(row) for row in rows}

    def _update(
        self,
        endpoint: str,
        partner_id: PartnerId,
        now: datetime,
        change: Callable[[BreakerState], BreakerState],
    ) -> BreakerState:
        self._healthy_until.pop(endpoint, None)
        for _ in range(2):  # a second pass only if another worker created the row first
            try:
                with self._engine.begin() as connection:
                    return self._update_in(connection, endpoint, partner_id, now, change)
            except StoreConflict:
                continue
        raise RuntimeError("breaker row kept changing under us")  # pragma: no cover

    def _update_in(
        self,
        connection: Connection,
        endpoint: str,
        partner_id: PartnerId,
        now: datetime,
        change: Callable[[BreakerState], BreakerState],
    ) -> BreakerState:
        row = connection.execute(
            select(partner_breakers)
            .where(partner_breakers.c.endpoint == endpoint)
            .with_for_update()
        ).first()
        before = _state(row)
        after = change(before)
        if after == before and row is not None:
            return after
        values = {
            "partner_id": partner_id,
            "status": after.status.value,
            "consecutive_failures": after.consecutive_failures,
            "open_until": after.open_until,
            "probe_until": after.probe_until,
            "updated_at": now,
        }
        if row is None:
            connection.execute(partner_breakers.insert().values(endpoint=endpoint, **values))
        else:
            connection.execute(
                partner_breakers.update()
                .where(partner_breakers.c.endpoint == endpoint)
                .values(**values)
            )
        if after.status is not before.status:
            append_audit(
                connection,
                AuditEvent(
                    at=now,
                    actor="payerbridge",
                    action=_AUDIT_ACTION[after.status],
                    entity_type="PartnerEndpoint",
                    entity_id=endpoint,
                    outcome=after.status.value,
                    request_id=None,
                    detail={
                        "partner_id": partner_id,
                        "from": before.status.value,
                        "consecutive_failures": after.consecutive_failures,
                    },
                ),
            )
        return after
