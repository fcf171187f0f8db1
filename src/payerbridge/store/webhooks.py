"""Webhook subscriptions and the delivery outbox.

``outbox_transitions`` runs in the unit of work that records a transition, so the
delivery commits with the change it announces; the unit hands the new deliveries' ids
on after its commit, and each gets a durable workflow (``workflows/webhooks.py``) that
``claim``s it when due, posts it outside any transaction and records the outcome. Every
write is in the caller's unit of work, its ids from ``unit.new_id()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Dialect

from payerbridge.errors import NotFound
from payerbridge.store.dbapi import DialectSql, insert_rows
from payerbridge.store.tables import exchanges, webhook_deliveries, webhook_subscriptions
from payerbridge.store.unit_of_work import SqlUnitOfWork, sql_unit
from payerbridge.timestamps import utc_iso
from payerbridge.transactions import UnitOfWork
from payerbridge.types import OPERATOR, ClientId, ExchangeId
from payerbridge.webhooks.model import (
    Delivery,
    DeliveryStatus,
    StateChange,
    Subscription,
    event_body,
)

__all__ = ["SqlWebhookStore", "listening_sql", "outbox_transitions", "webhook_listeners"]


# Who is told of an exchange's changes: enabled subscriptions of its client and of the
# operator. The operator's id is our constant, written into the text as a literal, so a
# statement that embeds this condition binds no parameter of ours.
_OPERATOR = "'" + OPERATOR.replace("'", "''") + "'"


def _listening(client_id: str) -> str:
    return f"w.disabled_at IS NULL AND w.client_id IN ({client_id}, {_OPERATOR})"


def listening_sql(client_id: str) -> str:
    """Does anyone listen to exchanges of the column ``client_id``, as an EXISTS with no
    parameter of its own, for the exchange store's statements."""
    return f"EXISTS (SELECT 1 FROM {webhook_subscriptions.name} w WHERE {_listening(client_id)})"


class WebhookSql(DialectSql):
    """The outbox's statements in the driver's own SQL: they run inside the exchange
    store's units of work, which are pipelined on PostgreSQL (``store.unit_of_work``)."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        subscriptions = f"SELECT w.id FROM {webhook_subscriptions.name} w WHERE "
        self.of_exchange = self.sql(
            subscriptions
            + _listening(f"(SELECT client_id FROM {exchanges.name} WHERE id = :exchange_id)")
        )
        self.of_client = self.sql(subscriptions + _listening(":client_id"))
        self.deliveries = self.rows_insert(
            webhook_deliveries,
            (
                "id",
                "subscription_id",
                "exchange_id",
                "seq",
                "body",
                "status",
                "attempts",
                "next_attempt_at",
                "created_at",
            ),
        )


def webhook_listeners(
    unit: SqlUnitOfWork, exchange_id: ExchangeId | None = None, *, client_id: ClientId | None = None
) -> list[str]:
    """The subscriptions told of the changes of an exchange (by its id, or by its client's
    before the exchange is written): one indexed read."""
    sql = WebhookSql.of(unit.dialect)
    cursor = unit.cursor()
    if client_id is not None:
        cursor.execute(sql.of_client, {"client_id": client_id})
    else:
        cursor.execute(sql.of_exchange, {"exchange_id": exchange_id})
    return [row[0] for row in cursor.fetchall()]


def outbox_transitions(
    unit: SqlUnitOfWork,
    listeners: Sequence[str],
    *,
    exchange_id: ExchangeId,
    transitions: Sequence[tuple[int, str | None, str, str | None]],
    at: datetime,
) -> None:
    """Queue each transition's (seq, from, to, reason code) delivery to each listening
    subscription, in the caller's transaction."""
    if not listeners:
        return
    sql = WebhookSql.of(unit.dialect)
    stamp = sql.timestamp(at)
    rows = []
    for subscription_id in listeners:
        for seq, from_state, to_state, reason_code in transitions:
            delivery_id = unit.new_id()
            change = StateChange(exchange_id, seq, from_state, to_state, utc_iso(at), reason_code)
            body = event_body(delivery_id, change)
            rows.append(
                {
                    "id": delivery_id,
                    "subscription_id": subscription_id,
                    "exchange_id": exchange_id,
                    "seq": seq,
                    "body": orjson.dumps(body).decode(),
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": stamp,
                    "created_at": stamp,
                }
            )
    insert_rows(unit.cursor(), (sql.deliveries, rows))
    unit.add_deliveries([row["id"] for row in rows])


def _subscription(row: Any) -> Subscription:
    return Subscription(row.id, row.client_id, row.url, row.created_at, row.disabled_at)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        subscription_id=row.subscription_id,
        exchange_id=ExchangeId(row.exchange_id),
        seq=row.seq,
        body=row.body.encode(),
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        url=getattr(row, "url", ""),
        secret=getattr(row, "secret", ""),
    )


class SqlWebhookStore:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._reader = reader or engine  # reads never take SQLite's write lock

    def subscribe(
        self, unit: UnitOfWork, *, client_id: ClientId, url: str, secret: str, at: datetime
    ) -> Subscription:
        subscription_id = unit.new_id()
        sql_unit(unit).connection.execute(
            webhook_subscriptions.insert().values(
                id=subscription_id,
                client_id=client_id,
                url=url,
                secret=secret,
                created_at=at,
                disabled_at=None,
            )
        )
        return Subscription(subscription_id, client_id, url, at, None)

    def subscriptions(self, client_id: ClientId) -> list[Subscription]:
        """The client's subscriptions (the operator's: everyone's), newest first."""
        query = select(webhook_subscriptions).order_by(webhook_subscriptions.c.created_at.desc())
        if client_id != OPERATOR:
            query = query.where(webhook_subscriptions.c.client_id == client_id)
        with self._reader.connect() as connection:
            return [_subscription(row) for row in connection.execute(query)]

    def subscription(self, subscription_id: str, client_id: ClientId) -> Subscription:
        """One of the client's subscriptions (any, for the operator), else NotFound."""
        with self._reader.connect() as connection:
            row = connection.execute(
                select(webhook_subscriptions).where(webhook_subscriptions.c.id == subscription_id)
            ).first()
        if row is None or (client_id != OPERATOR and row.client_id != client_id):
            raise NotFound(f"webhook subscription {subscription_id} does not exist")
        return _subscription(row)

    def disable(
        self, unit: UnitOfWork, subscription_id: str, client_id: ClientId, *, at: datetime
    ) -> Subscription:
        """Stop deliveries: pending ones are dropped with the subscription (kept, marked)."""
        current = self.subscription(subscription_id, client_id)
        if current.disabled_at is not None:
            return current
        connection = sql_unit(unit).connection
        connection.execute(
            webhook_subscriptions.update()
            .where(webhook_subscriptions.c.id == subscription_id)
            .values(disabled_at=at)
        )
        connection.execute(
            webhook_deliveries.update()
            .where(
                webhook_deliveries.c.subscription_id == subscription_id,
                webhook_deliveries.c.status == DeliveryStatus.PENDING.value,
            )
            .values(status=DeliveryStatus.FAILED.value, last_error="subscription disabled")
        )
        return Subscription(current.id, current.client_id, current.url, current.created_at, at)

    def deliveries(self, subscription_id: str, *, limit: int, offset: int) -> list[Delivery]:
        query = (
            select(webhook_deliveries)
            .where(webhook_deliveries.c.subscription_id == subscription_id)
            .order_by(webhook_deliveries.c.created_at, webhook_deliveries.c.seq)
            .limit(limit)
            .offset(offset)
        )
        with self._reader.connect() as connection:
            return [_delivery(row) for row in connection.execute(query)]

    def claim(self, unit: UnitOfWork, delivery_id: str, *, now: datetime) -> Delivery | None:
        """The delivery with its subscription's URL and secret, counted as one more
        attempt, if it is pending and due (its one workflow is the only claimant)."""
        connection = sql_unit(unit).connection
        taken = connection.execute(
            webhook_deliveries.update()
            .where(
                webhook_deliveries.c.id == delivery_id,
                webhook_deliveries.c.status == DeliveryStatus.PENDING.value,
                webhook_deliveries.c.next_attempt_at <= now,
            )
            .values(attempts=webhook_deliveries.c.attempts + 1)
        ).rowcount
        if not taken:
            return None
        row = connection.execute(
            select(
                webhook_deliveries,
                webhook_subscriptions.c.url,
                webhook_subscriptions.c.secret,
            )
            .join(webhook_subscriptions)
            .where(webhook_deliveries.c.id == delivery_id)
        ).one()
        return _delivery(row)

    def due(self, delivery_id: str) -> datetime | None:
        with self._reader.connect() as connection:
            return connection.execute(
                select(webhook_deliveries.c.next_attempt_at).where(
                    webhook_deliveries.c.id == delivery_id,
                    webhook_deliveries.c.status == DeliveryStatus.PENDING.value,
                )
            ).scalar_one_or_none()

    def overdue(self, *, before: datetime, limit: int = 1000) -> list[str]:
        """Pending deliveries due before ``before``: their workflow was never started
        (the process that committed them died first, or ran no workflows)."""
        with self._reader.connect() as connection:
            return list(
                connection.execute(
                    select(webhook_deliveries.c.id)
                    .where(
                        webhook_deliveries.c.status == DeliveryStatus.PENDING.value,
                        webhook_deliveries.c.next_attempt_at < before,
                    )
                    .order_by(webhook_deliveries.c.next_attempt_at)
                    .limit(limit)
                ).scalars()
            )

    def delivered(self, unit: UnitOfWork, delivery_id: str, *, status: int, at: datetime) -> None:
        self._finish(
            unit,
            delivery_id,
            status=DeliveryStatus.DELIVERED.value,
            last_status=status,
            last_error=None,
            delivered_at=at,
        )

    def failed(
        self,
        unit: UnitOfWork,
        delivery_id: str,
        *,
        status: int | None,
        error: str,
        retry_at: datetime | None,
    ) -> None:
        """A failed attempt: tried again at ``retry_at``, or given up when None."""
        values: dict[str, Any] = {
            "last_status": status,
            "last_error": error[:500],
        }
        if retry_at is None:
            values["status"] = DeliveryStatus.FAILED.value
        else:
            values["next_attempt_at"] = retry_at
        self._finish(unit, delivery_id, **values)

    def pending_count(self) -> int:
        with self._reader.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).where(
                        webhook_deliveries.c.status == DeliveryStatus.PENDING.value
                    )
                ).scalar_one()
            )

    def _finish(self, unit: UnitOfWork, delivery_id: str, **values: Any) -> None:
        sql_unit(unit).connection.execute(
            webhook_deliveries.update()
            .where(
                webhook_deliveries.c.id == delivery_id,
                # a disabled subscription's deliveries stay as they were marked
                webhook_deliveries.c.status == DeliveryStatus.PENDING.value,
            )
            .values(**values)
        )
