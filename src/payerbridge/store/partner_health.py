"""The calls made to each partner over a recent window, read from the audit trail: the
events of exchanges' partner calls, of the breakers' probes and of the scheduled checks
(``oversight.call_samples`` reads each as calls; ``oversight.partner_health`` judges
them). Bounded by the window, over the index on the events' instant."""

from __future__ import annotations

from datetime import datetime

import orjson
from sqlalchemy import Engine, and_, or_, select

from payerbridge.oversight.model import CallEvent
from payerbridge.store.tables import audit_events, exchanges

__all__ = ["SqlPartnerCalls"]

# At most this many events are read per window: a busy hour is judged on its latest.
_LIMIT = 20_000


class SqlPartnerCalls:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._reader = reader or engine

    def call_events_since(self, since: datetime) -> list[CallEvent]:
        """The events that carry calls to partners since ``since``, the newest first."""
        events = audit_events.c
        query = (
            select(events.at, events.entity_type, events.detail, exchanges.c.partner_id)
            .select_from(
                audit_events.outerjoin(
                    exchanges,
                    and_(events.entity_type == "Exchange", exchanges.c.id == events.entity_id),
                )
            )
            .where(
                events.at >= since,
                or_(
                    and_(events.entity_type == "Exchange", events.detail.like('%"call"%')),
                    and_(
                        events.entity_type == "PartnerEndpoint",
                        or_(events.detail.like('%"probe"%'), events.detail.like('%"check"%')),
                    ),
                ),
            )
            .order_by(events.at.desc(), events.seq.desc())
            .limit(_LIMIT)
        )
        with self._reader.connect() as connection:
            return [
                CallEvent(
                    row.entity_type,
                    orjson.loads(row.detail) if row.detail else {},
                    row.partner_id,
                )
                for row in connection.execute(query)
            ]
