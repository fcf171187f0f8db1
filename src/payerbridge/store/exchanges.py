"""Exchanges and their state history. Every transition commits with its audit event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import IntegrityError

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import NotFound
from payerbridge.exchange.model import (
    STOPPED_STATES,
    DeadLetter,
    ExchangeState,
    Submission,
    check_transition,
)
from payerbridge.store.audit import append_audit
from payerbridge.store.tables import (
    dead_letters,
    exchange_payloads,
    exchange_transitions,
    exchanges,
)

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
    policy_version: str | None = None


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
    idempotency_key: str | None
    current_step: str | None
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    deadline_at: datetime | None
    replay_count: int
    consent_id: str | None = None
    transitions: tuple[Transition, ...] = ()


def _json(value: Any) -> str | None:
    return orjson.dumps(value).decode() if value is not None else None


def _record(row: Any, transitions: tuple[Transition, ...] = ()) -> ExchangeRecord:
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
        idempotency_key=row.idempotency_key,
        current_step=row.current_step,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        deadline_at=row.deadline_at,
        replay_count=row.replay_count,
        consent_id=row.consent_id,
        transitions=transitions,
    )


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
    policy_version: str | None,
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
            detail=_json(detail) if detail else None,
            policy_version=policy_version,
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
                "policy_version": policy_version,
                **(detail or {}),
            },
        ),
    )


def _move(
    connection: Connection,
    exchange_id: str,
    current: ExchangeState,
    target: ExchangeState,
    *,
    at: datetime,
    actor: str,
    reason_code: str | None,
    detail: dict[str, Any] | None,
    updates: dict[str, Any] | None,
    policy_version: str | None,
) -> None:
    """One checked state change of a locked exchange row: the row, the next transition
    and its audit event, in the caller's transaction."""
    check_transition(current, target)
    seq = connection.execute(
        select(func.max(exchange_transitions.c.seq)).where(
            exchange_transitions.c.exchange_id == exchange_id
        )
    ).scalar_one()
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
        policy_version=policy_version,
        request_id=None,
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
        idempotency_key: str | None = None,
        deadline_at: datetime | None = None,
        policy_version: str | None = None,
        consent_id: str | None = None,
    ) -> Submission:
        """Record a new exchange in ``submitted``, or return the one this client already
        submitted under ``idempotency_key`` (the unique index settles concurrent storms)."""
        check_transition(None, ExchangeState.SUBMITTED)
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    exchanges.insert().values(
                        id=exchange_id,
                        state=ExchangeState.SUBMITTED.value,
                        partner_id=partner_id,
                        client_id=client_id,
                        request=_json(request),
                        request_hash=request_hash,
                        created_at=at,
                        updated_at=at,
                        idempotency_key=idempotency_key,
                        deadline_at=deadline_at,
                        attempts=0,
                        replay_count=0,
                        consent_id=consent_id,
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
                    policy_version=policy_version,
                    request_id=request_id,
                )
        except IntegrityError:
            existing = self.find_by_idempotency_key(client_id, idempotency_key)
            if existing is None:
                raise
            return existing
        return Submission(exchange_id, True, request_hash)

    def find_by_idempotency_key(self, client_id: str, key: str | None) -> Submission | None:
        if key is None:
            return None
        with self._engine.connect() as connection:
            row = connection.execute(
                select(exchanges.c.id, exchanges.c.request_hash).where(
                    exchanges.c.client_id == client_id, exchanges.c.idempotency_key == key
                )
            ).first()
        return Submission(row.id, False, row.request_hash) if row else None

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
        policy_version: str | None = None,
    ) -> None:
        """Move the exchange to ``target`` (checked against the state machine), apply
        ``updates`` to its row and run ``also``, all in one transaction with the audit event."""
        with self._engine.begin() as connection:
            row = connection.execute(
                select(exchanges.c.state).where(exchanges.c.id == exchange_id).with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"exchange {exchange_id} does not exist")
            _move(
                connection,
                exchange_id,
                ExchangeState(row.state),
                target,
                at=at,
                actor=actor,
                reason_code=reason_code,
                detail=detail,
                updates=updates,
                policy_version=policy_version,
            )
            if also is not None:
                also(connection)

    def block_under_consent_with(
        self, consent_id: str, *, at: datetime, actor: str, reason_code: str, text: str
    ) -> Callable[[Connection], list[str]]:
        """A transaction part that moves every unfinished exchange running under the consent
        to ``blocked`` (locking each row), with its transition and audit event."""

        def block(connection: Connection) -> list[str]:
            rows = connection.execute(
                select(exchanges.c.id, exchanges.c.state)
                .where(
                    exchanges.c.consent_id == consent_id,
                    exchanges.c.state.not_in([s.value for s in STOPPED_STATES]),
                )
                .with_for_update()
            ).all()
            blocked = []
            for row in rows:
                _move(
                    connection,
                    row.id,
                    ExchangeState(row.state),
                    ExchangeState.BLOCKED,
                    at=at,
                    actor=actor,
                    reason_code=reason_code,
                    detail={"consent_id": consent_id},
                    updates={
                        "error_code": reason_code,
                        "error_text": text,
                        "next_attempt_at": None,
                    },
                    policy_version=None,
                )
                blocked.append(row.id)
            return blocked

        return block

    def record_attempt(
        self,
        exchange_id: str,
        *,
        step: str,
        attempts: int,
        next_attempt_at: datetime | None,
        last_error: str,
        at: datetime,
        detail: dict[str, Any],
    ) -> None:
        """Note a failed attempt of a step (no state change), audited like a transition."""
        with self._engine.begin() as connection:
            connection.execute(
                exchanges.update()
                .where(exchanges.c.id == exchange_id)
                .values(
                    current_step=step,
                    attempts=attempts,
                    next_attempt_at=next_attempt_at,
                    last_error=last_error,
                    updated_at=at,
                )
            )
            append_audit(
                connection,
                AuditEvent(
                    at=at,
                    actor="payerbridge",
                    action="exchange.attempt",
                    entity_type="Exchange",
                    entity_id=exchange_id,
                    outcome="retry" if next_attempt_at else "gave-up",
                    request_id=None,
                    detail={"step": step, "attempt": attempts, **detail},
                ),
            )

    def current(self, exchange_id: str) -> ExchangeRecord:
        """The exchange's row without its history: what the workflow steps read."""
        with self._engine.connect() as connection:
            row = connection.execute(select(exchanges).where(exchanges.c.id == exchange_id)).first()
        if row is None:
            raise NotFound(f"exchange {exchange_id} does not exist")
        return _record(row)

    def get(self, exchange_id: str) -> ExchangeRecord:
        """The exchange with its ordered history of transitions."""
        with self._engine.connect() as connection:
            row = connection.execute(select(exchanges).where(exchanges.c.id == exchange_id)).first()
            if row is None:
                raise NotFound(f"exchange {exchange_id} does not exist")
            steps = connection.execute(
                select(exchange_transitions)
                .where(exchange_transitions.c.exchange_id == exchange_id)
                .order_by(exchange_transitions.c.seq)
            ).all()
        return _record(
            row,
            tuple(
                Transition(
                    seq=s.seq,
                    from_state=s.from_state,
                    to_state=s.to_state,
                    at=s.at,
                    actor=s.actor,
                    reason_code=s.reason_code,
                    detail=orjson.loads(s.detail) if s.detail else None,
                    policy_version=s.policy_version,
                )
                for s in steps
            ),
        )

    def list_page(
        self, *, state: ExchangeState | None, limit: int, offset: int
    ) -> tuple[int, list[ExchangeRecord]]:
        """(total, one page newest first), in two queries; histories are left out."""
        with self._engine.connect() as connection:
            count = select(func.count()).select_from(exchanges)
            page = select(exchanges).order_by(exchanges.c.created_at.desc(), exchanges.c.id)
            if state is not None:
                count = count.where(exchanges.c.state == state.value)
                page = page.where(exchanges.c.state == state.value)
            total = connection.execute(count).scalar_one()
            rows = connection.execute(page.limit(limit).offset(offset)).all()
        return int(total), [_record(row) for row in rows]

    def ids_in_state(self, state: ExchangeState, *, updated_before: datetime) -> list[str]:
        with self._engine.connect() as connection:
            return list(
                connection.execute(
                    select(exchanges.c.id).where(
                        exchanges.c.state == state.value, exchanges.c.updated_at < updated_before
                    )
                ).scalars()
            )

    def counts_by_state(self) -> dict[str, int]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(exchanges.c.state, func.count()).group_by(exchanges.c.state)
            ).all()
        return {row[0]: int(row[1]) for row in rows}

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

    def payload_sha256(self, exchange_id: str) -> str | None:
        with self._engine.connect() as connection:
            return connection.execute(
                select(exchange_payloads.c.sha256).where(
                    exchange_payloads.c.exchange_id == exchange_id
                )
            ).scalar_one_or_none()

    def dead_letter_with(self, letter: DeadLetter) -> Callable[[Connection], None]:
        """A transaction part that files the exchange in the dead-letter store."""

        def write(connection: Connection) -> None:
            connection.execute(
                dead_letters.delete().where(dead_letters.c.exchange_id == letter.exchange_id)
            )
            connection.execute(
                dead_letters.insert().values(
                    exchange_id=letter.exchange_id,
                    step=letter.step,
                    reason_code=letter.reason_code,
                    last_error=letter.last_error,
                    attempts=letter.attempts,
                    policy_snapshot=_json(letter.policy_snapshot),
                    last_route=_json(letter.last_route),
                    request_sha256=letter.request_sha256,
                    payload_sha256=letter.payload_sha256,
                    dead_lettered_at=letter.dead_lettered_at,
                )
            )

        return write

    def mark_replayed_with(
        self, exchange_id: str, *, by: str, key: str | None, at: datetime
    ) -> Callable[[Connection], None]:
        def write(connection: Connection) -> None:
            connection.execute(
                dead_letters.update()
                .where(dead_letters.c.exchange_id == exchange_id)
                .values(replayed_at=at, replayed_by=by, replay_key=key)
            )

        return write

    def dead_letter(self, exchange_id: str) -> DeadLetter | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(dead_letters).where(dead_letters.c.exchange_id == exchange_id)
            ).first()
        if row is None:
            return None
        return DeadLetter(
            exchange_id=row.exchange_id,
            step=row.step,
            reason_code=row.reason_code,
            last_error=row.last_error,
            attempts=row.attempts,
            policy_snapshot=orjson.loads(row.policy_snapshot),
            last_route=orjson.loads(row.last_route) if row.last_route else None,
            request_sha256=row.request_sha256,
            payload_sha256=row.payload_sha256,
            dead_lettered_at=row.dead_lettered_at,
            replayed_at=row.replayed_at,
            replayed_by=row.replayed_by,
            replay_key=row.replay_key,
        )
