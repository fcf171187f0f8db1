"""Exchange searches on the indexes of migration 0032: each filter leads an index on
``(…, created_at, id)``, the page is a range of it after the cursor, newest first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, func, or_, select

from payerbridge.exchange.model import DateRange, ExchangeCursor, ExchangeFilter, ExchangeRecord
from payerbridge.store.data_keys import DataKeyring
from payerbridge.store.exchanges import exchange_record
from payerbridge.store.tables import exchanges
from payerbridge.types import ClientId

__all__ = ["SqlExchangeSearch"]

_C = exchanges.c


class SqlExchangeSearch:
    """The ``ExchangeSearch`` port, reading on the reader engine (no write lock)."""

    def __init__(self, engine: Engine, *, keyring: DataKeyring) -> None:
        self._engine = engine
        self._keyring = keyring

    def find(
        self, where: ExchangeFilter, *, limit: int, after: ExchangeCursor | None
    ) -> list[ExchangeRecord]:
        conditions = _conditions(where)
        if after is not None:
            # Row values would say it in one comparison; the OR is what both planners
            # turn into one index range on (…, created_at, id).
            conditions.append(
                or_(
                    _C.created_at < after.created_at,
                    and_(_C.created_at == after.created_at, _C.id < after.exchange_id),
                )
            )
        query = (
            select(exchanges)
            .where(*conditions)
            .order_by(_C.created_at.desc(), _C.id.desc())
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [exchange_record(row, self._keyring) for row in connection.execute(query)]

    def count(self, where: ExchangeFilter) -> int:
        query = select(func.count()).select_from(exchanges).where(*_conditions(where))
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def client_ids(self) -> Sequence[ClientId]:
        with self._engine.connect() as connection:
            found = connection.execute(select(_C.client_id).distinct()).scalars()
            return [ClientId(client) for client in found]


def _conditions(where: ExchangeFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    equal: dict[str, Any] = {
        "client_id": where.client_id,
        "partner_id": where.partner_id,
        "request_id": where.request_id,
    }
    conditions.extend(_C[name] == value for name, value in equal.items() if value is not None)
    if where.member_keys is not None:
        conditions.append(_C.member_key.in_(sorted(where.member_keys)))
    if where.states:
        conditions.append(_C.state.in_(sorted(s.value for s in where.states)))
    if where.reason_codes:
        conditions.append(_C.error_code.in_(sorted(where.reason_codes)))
    conditions.extend(_within(_C.created_at, where.created))
    conditions.extend(_within(_C.updated_at, where.updated))
    return conditions


def _within(column: Any, dates: DateRange) -> list[ColumnElement[bool]]:
    found = []
    if dates.start is not None:
        found.append(column >= dates.start)
    if dates.end is not None:
        found.append(column < dates.end)
    return found
