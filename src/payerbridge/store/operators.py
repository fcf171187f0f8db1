"""The console's operator accounts and sessions (``security.ports.OperatorAccounts``),
written in the caller's unit of work, which the use case audits
(``security.operator_accounts``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, or_, select, update

from payerbridge.security.model import Operator, OperatorSession, Role, UnmaskGrant
from payerbridge.store.tables import operator_sessions, operators, unmask_grants
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork

__all__ = ["SqlOperatorAccounts"]


def _operator(row: Any) -> Operator:
    return Operator(
        name=row.name,
        role=Role(row.role),
        password_hash=row.password_hash,
        created_at=row.created_at,
        password_changed_at=row.password_changed_at,
        disabled_at=row.disabled_at,
    )


def _session(row: Any) -> OperatorSession:
    return OperatorSession(
        token_hash=row.token_hash,
        operator=row.operator,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        ended_at=row.ended_at,
    )


def _grant(row: Any) -> UnmaskGrant:
    return UnmaskGrant(
        id=row.id,
        operator=row.operator,
        reason=row.reason,
        granted_at=row.granted_at,
        expires_at=row.expires_at,
        needs_approval=bool(row.needs_approval),
        minutes=row.minutes,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
    )


class SqlOperatorAccounts:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine

    def get(self, name: str) -> Operator | None:
        with self._reader.connect() as connection:
            row = connection.execute(select(operators).where(operators.c.name == name)).first()
        return _operator(row) if row is not None else None

    def list(self) -> list[Operator]:
        with self._reader.connect() as connection:
            rows = connection.execute(select(operators).order_by(operators.c.name)).all()
        return [_operator(row) for row in rows]

    def add(self, unit: UnitOfWork, operator: Operator) -> None:
        sql_unit(unit).connection.execute(
            insert(operators).values(
                name=operator.name,
                role=operator.role.value,
                password_hash=operator.password_hash,
                created_at=operator.created_at,
                password_changed_at=operator.password_changed_at,
                disabled_at=operator.disabled_at,
            )
        )

    def set_password(self, unit: UnitOfWork, name: str, password_hash: str) -> bool:
        return self._update(unit, name, password_hash=password_hash, password_changed_at=unit.now)

    def set_role(self, unit: UnitOfWork, name: str, role: Role) -> bool:
        return self._update(unit, name, role=role.value)

    def disable(self, unit: UnitOfWork, name: str) -> bool:
        result = sql_unit(unit).connection.execute(
            update(operators)
            .where(operators.c.name == name, operators.c.disabled_at.is_(None))
            .values(disabled_at=unit.now)
        )
        return bool(result.rowcount)

    def _update(self, unit: UnitOfWork, name: str, **values: Any) -> bool:
        result = sql_unit(unit).connection.execute(
            update(operators).where(operators.c.name == name).values(**values)
        )
        return bool(result.rowcount)

    def open_session(self, unit: UnitOfWork, session: OperatorSession) -> None:
        sql_unit(unit).connection.execute(
            insert(operator_sessions).values(
                token_hash=session.token_hash,
                operator=session.operator,
                created_at=session.created_at,
                last_seen_at=session.last_seen_at,
                ended_at=session.ended_at,
            )
        )

    def session(self, token_hash: str) -> OperatorSession | None:
        with self._reader.connect() as connection:
            row = connection.execute(
                select(operator_sessions).where(operator_sessions.c.token_hash == token_hash)
            ).first()
        return _session(row) if row is not None else None

    def touch_session(self, unit: UnitOfWork, token_hash: str) -> None:
        sql_unit(unit).connection.execute(
            update(operator_sessions)
            .where(operator_sessions.c.token_hash == token_hash)
            .values(last_seen_at=unit.now)
        )

    def end_session(self, unit: UnitOfWork, token_hash: str) -> bool:
        result = sql_unit(unit).connection.execute(
            update(operator_sessions)
            .where(
                operator_sessions.c.token_hash == token_hash,
                operator_sessions.c.ended_at.is_(None),
            )
            .values(ended_at=unit.now)
        )
        return bool(result.rowcount)

    def end_sessions_of(self, unit: UnitOfWork, name: str) -> int:
        result = sql_unit(unit).connection.execute(
            update(operator_sessions)
            .where(operator_sessions.c.operator == name, operator_sessions.c.ended_at.is_(None))
            .values(ended_at=unit.now)
        )
        return int(result.rowcount)

    def add_grant(self, unit: UnitOfWork, grant: UnmaskGrant) -> None:
        sql_unit(unit).connection.execute(insert(unmask_grants).values(**grant.__dict__))

    def active_grant(self, name: str, *, now: datetime) -> UnmaskGrant | None:
        grants = unmask_grants
        with self._reader.connect() as connection:
            row = connection.execute(
                select(grants)
                .where(
                    grants.c.operator == name,
                    grants.c.expires_at > now,
                    or_(grants.c.needs_approval.is_(False), grants.c.approved_at.is_not(None)),
                )
                .order_by(grants.c.expires_at.desc())
                .limit(1)
            ).first()
        return None if row is None else _grant(row)

    def pending_grants(self, *, now: datetime) -> tuple[UnmaskGrant, ...]:
        grants = unmask_grants
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(grants)
                .where(
                    grants.c.needs_approval.is_(True),
                    grants.c.approved_at.is_(None),
                    grants.c.expires_at > now,
                )
                .order_by(grants.c.granted_at, grants.c.id)
                .limit(200)
            ).all()
        return tuple(_grant(row) for row in rows)

    def approve_grant(
        self, unit: UnitOfWork, grant_id: str, *, by: str, expires_at: datetime
    ) -> UnmaskGrant | None:
        grants = unmask_grants
        connection = sql_unit(unit).connection
        changed = connection.execute(
            update(grants)
            .where(
                grants.c.id == grant_id,
                grants.c.needs_approval.is_(True),
                grants.c.approved_at.is_(None),
                grants.c.expires_at > unit.now,
            )
            .values(approved_by=by, approved_at=unit.now, expires_at=expires_at)
        )
        if changed.rowcount != 1:
            return None
        row = connection.execute(select(grants).where(grants.c.id == grant_id)).one()
        return _grant(row)

    def grant(self, grant_id: str) -> UnmaskGrant | None:
        with self._reader.connect() as connection:
            row = connection.execute(
                select(unmask_grants).where(unmask_grants.c.id == grant_id)
            ).first()
        return None if row is None else _grant(row)
