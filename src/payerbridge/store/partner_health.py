"""The calls made to each partner over a recent window, read from the audit trail
(``oversight.partner_health`` judges them): the partner calls exchanges' events carry
(``detail.call``, ``exchange.partner_calls``) and the probes the breaker's events carry
(``detail.probe``, ``exchange.circuit``). Bounded by the window, over the index on the
events' instant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, and_, or_, select

from payerbridge.exchange.partner_calls import ANSWERED, REFUSED
from payerbridge.oversight.partner_health import CallSample
from payerbridge.store.tables import audit_events, exchanges

__all__ = ["SqlPartnerCalls"]

# At most this many events are read per window: a busy hour is judged on its latest.
_LIMIT = 20_000


class SqlPartnerCalls:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._reader = reader or engine

    def calls_since(self, since: datetime) -> dict[str, list[CallSample]]:
        """Per partner id, the calls and probes made to it since ``since``."""
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
                        events.detail.like('%"probe"%'),
                    ),
                ),
            )
            .order_by(events.at.desc(), events.seq.desc())
            .limit(_LIMIT)
        )
        found: dict[str, list[CallSample]] = {}
        with self._reader.connect() as connection:
            for row in connection.execute(query):
                detail = orjson.loads(row.detail) if row.detail else {}
                if row.entity_type == "Exchange":
                    partner, sample = row.partner_id, _call(detail.get("call"))
                else:
                    partner, sample = detail.get("partner_id"), _probe(detail.get("probe"))
                if partner and sample is not None:
                    found.setdefault(str(partner), []).append(sample)
        return found


def _call(call: Any) -> CallSample | None:
    if not isinstance(call, dict) or not isinstance(call.get("at"), str):
        return None
    outcome = call.get("outcome")
    answered = outcome in (ANSWERED, REFUSED)
    if outcome == ANSWERED:
        kind = ANSWERED
    elif outcome == REFUSED:
        kind = f"refused: {call.get('error') or call.get('status')}"
    else:
        kind = _failure(call.get("status"), call.get("error"))
    return CallSample(_instant(call["at"]), answered, int(call.get("latency_ms") or 0), kind)


def _probe(probe: Any) -> CallSample | None:
    if not isinstance(probe, dict) or not isinstance(probe.get("at"), str):
        return None
    answered = bool(probe.get("answered"))
    kind = "answered" if answered else _failure(probe.get("status"), probe.get("error"))
    latency = int(probe.get("latency_ms") or 0)
    return CallSample(_instant(probe["at"]), answered, latency, kind, probe=True)


def _failure(status: Any, error: Any) -> str:
    if isinstance(status, int):
        return f"http {status}"
    return str(error or "unavailable")


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
