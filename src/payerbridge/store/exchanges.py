"""Exchanges and their state history. Every transition commits with its audit event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, select

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import NotFound
from payerbridge.exchange.model import ExchangeState, check_transition
from payerbridge.store.audit import append_audit
from payerbridge.store.tables import exchange_payloads, exchange_transitions, exchanges

__all__ = ["ExchangeRecord", "SqlExchangeStore", "Transition"]


@dataclass(frozen=True)
class Transition:
    seq: int
    from_state: str | None
    to_state: str
    at: datetime
    actor: str
    reason_code: str | None
    detail: dict[str, Any] | None


@dataclass(frozen=True)
class ExchangeRecord:
    id: str
    state: ExchangeState
    partner_id: str
    client_id: str
    request: dict[str, Any]
    request_hash: str
    matched_member_ref: str | None
    member_identifier: str | None
    imported_patient_id: str | None
    resource_count: int | None
    error_code: str | None
    error_text: str | None
    created_at: datetime
    updated_at: datetime
    transitions: tuple[Transition, ...]


def _record_transition(
    connection: Connection,
    exchange_id: str,
    seq: int,
    current: ExchangeState | None,
    target: ExchangeState,
    *,
    at: datetime,
    actor: str,
    reason_code: str | None,
    detail: dict[str, Any] | None,
    request_id: str | None,
) -> None:
    connection.execute(
        exchange_transitions.insert().values(
            exchange_id=exchange_id,
            seq=seq,
            from_state=current.value if current else None,
            to_state=target.value,
            at=at,
            actor=actor,
            reason_code=reason_code,
            detail=orjson.dumps(detail).decode() if detail else None,
        )
    )
    append_audit(
        connection,
        AuditEvent(
            at=at,
            actor=actor,
            action="exchange.transition",
            entity_type="Exchange",
            entity_id=exchange_id,
            outcome=target.value,
            request_id=request_id,
            detail={
                "from": current.value if current else None,
                "to": target.value,
                "reason_code": reason_code,
                **(detail or {}),
            },
        ),
    )


class SqlExchangeStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(
        self,
        *,
        exchange_id: str,
        partner_id: str,
        client_id: str,
        request: dict[str, Any],
        request_hash: str,
        at: datetime,
        request_id: str | None,
    ) -> None:
        check_transition(None, ExchangeState.SUBMITTED)
        with self._engine.begin() as connection:
            connection.execute(
                exchanges.insert().values(
                    id=exchange_id,
                    state=ExchangeState.SUBMITTED.value,
                    partner_id=partner_id,
                    client_id=client_id,
                    request=orjson.dumps(request).decode(),
                    request_hash=request_hash,
                    created_at=at,
                    updated_at=at,
                )
            )
            _record_transition(
                connection,
                exchange_id,
                1,
                None,
                ExchangeState.SUBMITTED,
                at=at,
                actor=client_id,
                reason_code=None,
                detail=None,
                request_id=request_id,
            )

    def transition(
        self,
        exchange_id: str,
        target: ExchangeState,
        *,
        at: datetime,
        actor: str,
        reason_code: str | None = None,
        detail: dict[str, Any] | None = None,
        updates: dict[str, Any] | None = None,
        also: Callable[[Connection], None] | None = None,
    ) -> None:
        """Move the exchange to ``target`` (checked against the state machine), apply
        ``updates`` to its row and run ``also``, all in one transaction with the audit event."""
        with self._engine.begin() as connection:
            row = connection.execute(
                select(exchanges.c.state).where(exchanges.c.id == exchange_id).with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"exchange {exchange_id} does not exist")
            current = ExchangeState(row.state)
            check_transition(current, target)
            seq = connection.execute(
                select(func.max(exchange_transitions.c.seq)).where(
                    exchange_transitions.c.exchange_id == exchange_id
                )
            ).scalar_one()
            if also is not None:
                also(connection)
            connection.execute(
                exchanges.update()
                .where(exchanges.c.id == exchange_id)
                .values(state=target.value, updated_at=at, **(updates or {}))
            )
            _record_transition(
                connection,
                exchange_id,
                seq + 1,
                current,
                target,
                at=at,
                actor=actor,
                reason_code=reason_code,
                detail=detail,
                request_id=None,
            )

    def get(self, exchange_id: str) -> ExchangeRecord:
        with self._engine.connect() as connection:
            row = connection.execute(select(exchanges).where(exchanges.c.id == exchange_id)).first()
            if row is None:
                raise NotFound(f"exchange {exchange_id} does not exist")
            steps = connection.execute(
                select(exchange_transitions)
                .where(exchange_transitions.c.exchange_id == exchange_id)
                .order_by(exchange_transitions.c.seq)
            ).all()
        return ExchangeRecord(
            id=row.id,
            state=ExchangeState(row.state),
            partner_id=row.partner_id,
            client_id=row.client_id,
            request=orjson.loads(row.request),
            request_hash=row.request_hash,
            matched_member_ref=row.matched_member_ref,
            member_identifier=row.member_identifier,
            imported_patient_id=row.imported_patient_id,
            resource_count=row.resource_count,
            error_code=row.error_code,
            error_text=row.error_text,
            created_at=row.created_at,
            updated_at=row.updated_at,
            transitions=tuple(
                Transition(
                    seq=s.seq,
                    from_state=s.from_state,
                    to_state=s.to_state,
                    at=s.at,
                    actor=s.actor,
                    reason_code=s.reason_code,
                    detail=orjson.loads(s.detail) if s.detail else None,
                )
                for s in steps
            ),
        )

    def list_ids(self, *, state: ExchangeState | None, limit: int, offset: int
                 ) -> tuple[int, list[str]]:
        """(total, ids of one page), newest first."""
        condition = exchanges.c.state == state.value if state is not None else None
        with self._engine.connect() as connection:
            count = select(func.count()).select_from(exchanges)
            page = select(exchanges.c.id).order_by(exchanges.c.created_at.desc(),
                                                   exchanges.c.id)
            if condition is not None:
                count, page = count.where(condition), page.where(condition)
            total = connection.execute(count).scalar_one()
            ids = connection.execute(page.limit(limit).offset(offset)).scalars().all()
        return int(total), list(ids)

    def save_payload_with(
        self, exchange_id: str, body: str, sha256: str, at: datetime
    ) -> Callable[[Connection], None]:
        """A transaction part that keeps the received Bundle (replacing an earlier attempt's)."""

        def write(connection: Connection) -> None:
            connection.execute(
                exchange_payloads.delete().where(exchange_payloads.c.exchange_id == exchange_id)
            )
            connection.execute(
                exchange_payloads.insert().values(
                    exchange_id=exchange_id, received_at=at, sha256=sha256, body=body
                )
            )

        return write

    def payload(self, exchange_id: str) -> str:
        with self._engine.connect() as connection:
            body = connection.execute(
                select(exchange_payloads.c.body).where(
                    exchange_payloads.c.exchange_id == exchange_id
                )
            ).scalar_one_or_none()
        if body is None:
            raise NotFound(f"exchange {exchange_id} has no received payload")
        return str(body)
