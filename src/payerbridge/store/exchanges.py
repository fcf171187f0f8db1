"""Exchanges and their state history, written in the unit of work the store is bound to
(``within``, ADR 0051): every transition commits with its webhook deliveries, and with
the audit events the use case records on the same unit (``exchange/moves.py``). The
submitted request (the member's demographics) is sealed under the data keys (ADR 0039),
bound to its exchange."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, and_, bindparam, func, select
from sqlalchemy.engine import Dialect

from payerbridge.errors import IllegalTransition, NotFound
from payerbridge.exchange.model import (
    DATA_ENDS,
    STOPPED_STATES,
    Attempt,
    DeadLetter,
    ExchangeReason,
    ExchangeRecord,
    ExchangeState,
    Move,
    NewExchange,
    Stamp,
    Submission,
    Transition,
    check_transition,
)
from payerbridge.store.data_keys import DataKeyring
from payerbridge.store.dbapi import DialectSql, insert_rows, raw_cursor, read_row
from payerbridge.store.sealed_columns import EXCHANGE_REQUEST
from payerbridge.store.sealed_fields import EXCHANGE_PAYLOAD
from payerbridge.store.tables import (
    UtcDateTime,
    dead_letters,
    exchange_payloads,
    exchange_transitions,
    exchanges,
)
from payerbridge.store.unit_of_work import SqlUnitOfWork, UnitBound
from payerbridge.store.webhooks import listening_sql, outbox_transitions, webhook_listeners
from payerbridge.types import ClientId, ExchangeId, PartnerId

__all__ = ["SqlExchangeStore", "exchange_record"]


def _json(value: Any) -> str | None:
    return orjson.dumps(value).decode() if value is not None else None


def exchange_record(
    row: Any, keyring: DataKeyring, transitions: tuple[Transition, ...] = ()
) -> ExchangeRecord:
    """The exchange of a row of ``exchanges``, its request opened."""
    request = keyring.open(row.request, field=EXCHANGE_REQUEST, row_key=row.id)
    return ExchangeRecord(
        id=row.id,
        state=ExchangeState(row.state),
        partner_id=row.partner_id,
        client_id=row.client_id,
        request=orjson.loads(request),
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
        step_started_at=row.step_started_at,
        request_shape=row.request_shape,
        data_path=row.data_path,
        member_key=row.member_key,
        request_id=row.request_id,
        since=row.since,
        transitions=transitions,
    )


@dataclass(frozen=True)
class _Written:
    """A checked transition about to be written."""

    seq: int
    current: ExchangeState | None
    target: ExchangeState
    reason_code: str | None = None
    detail: dict[str, Any] | None = None


_COLUMNS = tuple(column.name for column in exchanges.c)
_TIMESTAMPS = frozenset(
    column.name for column in exchanges.c if isinstance(column.type, UtcDateTime)
)


class ExchangeSql(DialectSql):
    """The statements every step of every exchange runs (read the row; lock it, move it,
    record the transitions and their audit events) as DB-API SQL on the transaction's
    own cursor: as SQLAlchemy expressions they cost more in Python than in the database."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        sql = self.sql
        self.by_key = sql(
            f"SELECT id, request_hash FROM {exchanges.name} "
            "WHERE client_id = :client_id AND idempotency_key = :idempotency_key"
        )
        # The row locked: its state, its last transition and whether anyone listens.
        self.lock_state = sql(
            f"SELECT state, last_seq, {_LISTENERS} FROM {exchanges.name} WHERE id = :id"
            + (f" FOR UPDATE OF {exchanges.name}" if self.is_postgres else "")
        )
        self.new_exchange = self.rows_insert(
            exchanges,
            (
                "id",
                "state",
                "partner_id",
                "client_id",
                "request",
                "request_hash",
                "created_at",
                "updated_at",
                "idempotency_key",
                "deadline_at",
                "attempts",
                "replay_count",
                "consent_id",
                "last_seq",
                "request_id",
                "member_key",
                "since",
            ),
        )
        self.transitions = self.rows_insert(
            exchange_transitions,
            (
                "exchange_id",
                "seq",
                "from_state",
                "to_state",
                "at",
                "actor",
                "reason_code",
                "detail",
                "policy_version",
            ),
        )
        # The received Bundle, replacing an earlier attempt's (both dialects upsert alike).
        self.keep_payload = self.insert(
            exchange_payloads,
            ("exchange_id", "received_at", "sha256", "body"),
            " ON CONFLICT (exchange_id) DO UPDATE SET received_at = excluded.received_at, "
            "sha256 = excluded.sha256, body = excluded.body",
        )
        self._updates: dict[tuple[str, ...], str] = {}
        self._moves: dict[tuple[str, ...], str] = {}
        # RETURNING: SQLite 3.35 and later; before, a move locks the row first.
        self.moves_in_one = self.is_postgres or sqlite3.sqlite_version_info >= (3, 35)

    def update(self, columns: tuple[str, ...]) -> str:
        """UPDATE of the exchange's ``columns`` (each bound by its name) where the id is
        ``:exchange_id``, written once per set."""
        text = self._updates.get(columns)
        if text is None:
            text = self._updates[columns] = self.sql(
                f"UPDATE {exchanges.name} SET {_assignments(columns)} WHERE id = :exchange_id"
            )
        return text

    def move(self, columns: tuple[str, ...]) -> str:
        """The UPDATE of ``update`` only while the exchange is in state ``:expected``,
        counting ``:steps`` more transitions: it locks and moves the row in one statement
        and returns what the lock read (its new last transition, whether anyone listens)."""
        text = self._moves.get(columns)
        if text is None:
            text = self._moves[columns] = self.sql(
                f"UPDATE {exchanges.name} SET {_assignments(columns)}, "
                "last_seq = last_seq + :steps WHERE id = :exchange_id AND state = :expected "
                f"RETURNING last_seq, {_LISTENERS}"
            )
        return text

    def assigned(self, values: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
        """The columns ``values`` sets (for ``update``/``move``) and their bound values."""
        return tuple(values), self.bound(values, _TIMESTAMPS)


# Whether anyone listens to the exchange row (no parameter of its own).
_LISTENERS = listening_sql(f"{exchanges.name}.client_id")


def _assignments(columns: tuple[str, ...]) -> str:
    unknown = set(columns) - set(_COLUMNS)
    if unknown:
        raise ValueError(f"exchanges has no column {sorted(unknown)}")
    return ", ".join(f"{column} = :{column}" for column in columns)


def _write_transitions(
    unit: SqlUnitOfWork,
    exchange_id: ExchangeId,
    written: Sequence[_Written],
    stamp: Stamp,
    listeners: Sequence[str],
) -> None:
    """The transitions and their webhook deliveries, each kind in one statement, in the
    unit of work."""
    sql = ExchangeSql.of(unit.dialect)
    at = sql.timestamp(stamp.at)
    transitions = [
        {
            "exchange_id": exchange_id,
            "seq": w.seq,
            "from_state": w.current.value if w.current else None,
            "to_state": w.target.value,
            "at": at,
            "actor": stamp.actor,
            "reason_code": w.reason_code,
            "detail": _json(w.detail) if w.detail else None,
            "policy_version": stamp.policy_version,
        }
        for w in written
    ]
    insert_rows(unit.cursor(), (sql.transitions, transitions))
    outbox_transitions(
        unit,
        listeners,
        exchange_id=exchange_id,
        transitions=[
            (w.seq, w.current.value if w.current else None, w.target.value, w.reason_code)
            for w in written
        ],
        at=stamp.at,
    )


def _plan(
    current: ExchangeState, moves: Sequence[Move], at: datetime
) -> tuple[list[tuple[ExchangeState, Move]], dict[str, Any]]:
    """Each move checked against the state machine, from ``current``; and the row's new
    values (every move's updates, the last state)."""
    steps, values = [], {}
    for move in moves:
        check_transition(current, move.target)
        steps.append((current, move))
        values.update(move.updates or {})
        current = move.target
    return steps, {**values, "state": current.value, "updated_at": at}


def _written(steps: list[tuple[ExchangeState, Move]], last_seq: int) -> list[_Written]:
    return [
        _Written(seq, current, move.target, move.reason_code, move.detail)
        for seq, (current, move) in enumerate(steps, start=last_seq + 1)
    ]


@dataclass(frozen=True)
class _Locked:
    """An exchange row as locked: its state and the sequence of its last transition."""

    exchange_id: ExchangeId
    state: ExchangeState
    last_seq: int


def _moves(
    unit: SqlUnitOfWork,
    row: _Locked,
    moves: Sequence[Move],
    stamp: Stamp,
    listeners: Sequence[str],
) -> None:
    """Checked state changes of a locked exchange row, in the unit of work: the row (once,
    with every move's updates) and the transitions."""
    steps, values = _plan(row.state, moves, stamp.at)
    values["last_seq"] = row.last_seq + len(steps)
    sql = ExchangeSql.of(unit.dialect)
    columns, bound = sql.assigned(values)
    unit.cursor().execute(sql.update(columns), {**bound, "exchange_id": row.exchange_id})
    _write_transitions(unit, row.exchange_id, _written(steps, row.last_seq), stamp, listeners)


# Built once, so SQLAlchemy compiles each once.
_PAYLOAD = select(exchange_payloads.c.body).where(
    exchange_payloads.c.exchange_id == bindparam("id")
)


class SqlExchangeStore(UnitBound):
    def __init__(
        self, engine: Engine, *, keyring: DataKeyring, reader: Engine | None = None
    ) -> None:
        self._engine = engine
        self._reader = reader or engine  # reads never take SQLite's write lock
        self._keyring = keyring
        self._sql = ExchangeSql.of(engine.dialect)

    def create(self, new: NewExchange) -> None:
        """Record a new exchange in ``submitted``. Another one of this client under the
        same Idempotency-Key makes the unit of work's commit raise StoreConflict (the
        unique index settles concurrent storms)."""
        check_transition(None, ExchangeState.SUBMITTED)
        sql_of = self._writing()
        sql = ExchangeSql.of(sql_of.dialect)
        # On PostgreSQL, with the unit of work's commit: the listeners' lookup, then the
        # inserts with COMMIT, in two round trips (one more for an opt-in's lookup).
        listeners = webhook_listeners(sql_of, client_id=new.client_id)
        values = {
            "id": new.exchange_id,
            "state": ExchangeState.SUBMITTED.value,
            "partner_id": new.partner_id,
            "client_id": new.client_id,
            "request": self._keyring.seal(
                orjson.dumps(new.request), field=EXCHANGE_REQUEST, row_key=new.exchange_id
            ),
            "request_hash": new.request_hash,
            "created_at": new.at,
            "updated_at": new.at,
            "idempotency_key": new.idempotency_key,
            "deadline_at": new.deadline_at,
            "attempts": 0,
            "replay_count": 0,
            "consent_id": new.consent_id,
            "last_seq": 1,
            "request_id": new.request_id,
            "member_key": new.member_key,
            "since": new.since,
        }
        insert_rows(sql_of.cursor(), (sql.new_exchange, [sql.bound(values, _TIMESTAMPS)]))
        stamp = Stamp(new.at, new.client_id, new.policy_version)
        submitted = [_Written(1, None, ExchangeState.SUBMITTED)]
        _write_transitions(sql_of, new.exchange_id, submitted, stamp, listeners)

    def find_by_idempotency_key(self, client_id: ClientId, key: str | None) -> Submission | None:
        if key is None:
            return None
        with raw_cursor(self._engine) as cursor:  # see raw_cursor: the writer's, on SQLite
            cursor.execute(self._sql.by_key, {"client_id": client_id, "idempotency_key": key})
            row = cursor.fetchone()
        return Submission(row[0], False, row[1]) if row else None

    def advance(
        self,
        exchange_id: ExchangeId,
        moves: Sequence[Move],
        stamp: Stamp,
        *,
        expected: ExchangeState | None = None,
    ) -> ExchangeState:
        """Several state changes in a row, each checked against the state machine, in the
        unit of work: a step that passes through states without waiting on anyone commits
        once. Returns the state the moves started from.

        ``expected``: the state the caller read, from which the moves start; if the
        exchange is no longer in it (a revocation, an operator), IllegalTransition. The
        row is then locked and moved by one statement, not read under a lock first."""
        sql_of = self._writing()
        if expected is not None and self._sql.moves_in_one:
            self._move_from(sql_of, _Locked(exchange_id, expected, 0), moves, stamp)
            return expected
        cursor = sql_of.cursor()
        cursor.execute(self._sql.lock_state, {"id": exchange_id})
        row = cursor.fetchone()
        if row is None:
            raise NotFound(f"exchange {exchange_id} does not exist")
        start = ExchangeState(row[0])
        if expected is not None and start is not expected:
            raise IllegalTransition(f"the exchange is in '{row[0]}', no longer in '{expected}'")
        listeners = webhook_listeners(sql_of, exchange_id) if row[2] else ()
        _moves(sql_of, _Locked(exchange_id, start, row[1]), moves, stamp, listeners)
        return start

    def _move_from(
        self, unit: SqlUnitOfWork, expected: _Locked, moves: Sequence[Move], stamp: Stamp
    ) -> None:
        """The moves from the state ``expected`` says, by one statement that finds the row
        still there (its ``last_seq`` is read back from the move)."""
        exchange_id = expected.exchange_id
        steps, values = _plan(expected.state, moves, stamp.at)
        sql = self._sql
        columns, bound = sql.assigned(values)
        # On PostgreSQL: BEGIN and the move in one round trip, the rest and COMMIT in another.
        cursor = unit.cursor()
        moved = {
            **bound,
            "steps": len(steps),
            "exchange_id": exchange_id,
            "expected": expected.state.value,
        }
        cursor.execute(sql.move(columns), moved)
        row = cursor.fetchone()
        if row is None:
            cursor.execute(sql.lock_state, {"id": exchange_id})
            found = cursor.fetchone()
            if found is None:
                raise NotFound(f"exchange {exchange_id} does not exist")
            raise IllegalTransition(
                f"the exchange is in '{found[0]}', no longer in '{expected.state}'"
            )
        listeners = webhook_listeners(unit, exchange_id) if row[1] else ()
        _write_transitions(
            unit, exchange_id, _written(steps, row[0] - len(steps)), stamp, listeners
        )

    def block_under_consent(
        self, consent_id: str, move: Move, *, at: datetime, actor: str
    ) -> list[tuple[ExchangeId, ExchangeState]]:
        """``move`` every unfinished exchange running under the consent (to ``blocked``),
        locking each row, with its transition; each one's id and the state it left."""
        sql_of = self._writing()
        rows = sql_of.connection.execute(
            select(exchanges.c.id, exchanges.c.state, exchanges.c.last_seq)
            .where(
                exchanges.c.consent_id == consent_id,
                exchanges.c.state.not_in([s.value for s in STOPPED_STATES]),
            )
            .with_for_update()
        ).all()
        blocked = []
        for row in rows:
            start = ExchangeState(row.state)
            locked = _Locked(row.id, start, row.last_seq)
            _moves(sql_of, locked, [move], Stamp(at, actor), webhook_listeners(sql_of, row.id))
            blocked.append((ExchangeId(row.id), start))
        return blocked

    def record_attempt(self, exchange_id: ExchangeId, attempt: Attempt, *, at: datetime) -> None:
        """Note an attempt of a step that brought no answer (no state change): the calls
        the step made, with when the next is due and when the step began, what resuming
        it needs."""
        self._writing().connection.execute(
            exchanges.update()
            .where(exchanges.c.id == exchange_id)
            .values(
                current_step=attempt.step,
                attempts=attempt.attempts,
                next_attempt_at=attempt.next_attempt_at,
                step_started_at=attempt.step_started_at,
                last_error=attempt.last_error,
                updated_at=at,
            )
        )

    def current(self, exchange_id: ExchangeId) -> ExchangeRecord:
        """The exchange's row without its history: what the workflow steps read."""
        row = read_row(self._engine, exchanges, "id", exchange_id)
        if row is None:
            raise NotFound(f"exchange {exchange_id} does not exist")
        return exchange_record(row, self._keyring)

    def get(self, exchange_id: ExchangeId) -> ExchangeRecord:
        """The exchange with its ordered history of transitions."""
        with self._reader.connect() as connection:
            row = connection.execute(select(exchanges).where(exchanges.c.id == exchange_id)).first()
            if row is None:
                raise NotFound(f"exchange {exchange_id} does not exist")
            steps = connection.execute(
                select(exchange_transitions)
                .where(exchange_transitions.c.exchange_id == exchange_id)
                .order_by(exchange_transitions.c.seq)
            ).all()
        return exchange_record(
            row,
            self._keyring,
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

    def ids_in_state(
        self,
        state: ExchangeState,
        *,
        updated_before: datetime,
        partner_id: PartnerId | None = None,
    ) -> list[ExchangeId]:
        where = [exchanges.c.state == state.value, exchanges.c.updated_at < updated_before]
        if partner_id is not None:
            where.append(exchanges.c.partner_id == partner_id)
        query = select(exchanges.c.id).where(*where).order_by(exchanges.c.updated_at)
        with self._reader.connect() as connection:
            return list(connection.execute(query).scalars())

    def compartments_held(
        self, client_id: ClientId, member_key: str, *, other_than: str
    ) -> list[str]:
        """Our Patient ids of the member ``member_key`` (the client's) that exchanges with
        other old payers stored, ``other_than`` this one."""
        with self._reader.connect() as connection:
            found = connection.execute(
                select(exchanges.c.imported_patient_id)
                .where(
                    exchanges.c.member_key == member_key,
                    exchanges.c.client_id == client_id,
                    exchanges.c.state.in_([s.value for s in DATA_ENDS]),
                    exchanges.c.imported_patient_id.is_not(None),
                    exchanges.c.imported_patient_id != other_than,
                )
                .distinct()
            ).scalars()
            return sorted(str(patient) for patient in found)

    def waiting_on_partner_reviewers(
        self, *, client_id: ClientId | None, limit: int, offset: int
    ) -> tuple[int, list[ExchangeRecord]]:
        """(total, one page) of ``client_id``'s exchanges (everyone's when None) waiting on
        an old payer's reviewer, the longest waiting first (the earliest deadline: each
        wait's is fixed when it begins); histories are left out."""
        waiting = and_(
            exchanges.c.state == ExchangeState.MANUAL_REVIEW.value,
            exchanges.c.error_code == ExchangeReason.PARTNER_REVIEW.value,
        )
        if client_id is not None:
            waiting = and_(waiting, exchanges.c.client_id == client_id)
        with self._reader.connect() as connection:
            total = connection.execute(
                select(func.count()).select_from(exchanges).where(waiting)
            ).scalar_one()
            rows = connection.execute(
                select(exchanges)
                .where(waiting)
                .order_by(exchanges.c.deadline_at, exchanges.c.id)
                .limit(limit)
                .offset(offset)
            ).all()
        return int(total), [exchange_record(row, self._keyring) for row in rows]

    def counts_by_state(self) -> dict[str, int]:
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(exchanges.c.state, func.count()).group_by(exchanges.c.state)
            ).all()
        return {row[0]: int(row[1]) for row in rows}

    def save_payload(self, exchange_id: ExchangeId, body: str, sha256: str, at: datetime) -> None:
        """Keep the received Bundle (replacing an earlier attempt's)."""
        sql = self._sql
        self._writing().cursor().execute(
            sql.keep_payload,
            {
                "exchange_id": exchange_id,
                "received_at": sql.timestamp(at),
                "sha256": sha256,
                "body": self._keyring.seal_bytes(body, field=EXCHANGE_PAYLOAD, row_key=exchange_id),
            },
        )

    def payload(self, exchange_id: ExchangeId) -> str:
        with self._reader.connect() as connection:
            body = connection.execute(_PAYLOAD, {"id": exchange_id}).scalar_one_or_none()
        if body is None:
            raise NotFound(f"exchange {exchange_id} has no received payload")
        return self._keyring.open(body, field=EXCHANGE_PAYLOAD, row_key=exchange_id).decode()

    def payload_sha256(self, exchange_id: ExchangeId) -> str | None:
        with self._reader.connect() as connection:
            return connection.execute(
                select(exchange_payloads.c.sha256).where(
                    exchange_payloads.c.exchange_id == exchange_id
                )
            ).scalar_one_or_none()

    def file_dead_letter(self, letter: DeadLetter) -> None:
        """File the exchange in the dead-letter store (replacing an earlier letter)."""
        connection = self._writing().connection
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

    def mark_replayed(
        self, exchange_id: ExchangeId, *, by: str, key: str | None, at: datetime
    ) -> None:
        self._writing().connection.execute(
            dead_letters.update()
            .where(dead_letters.c.exchange_id == exchange_id)
            .values(replayed_at=at, replayed_by=by, replay_key=key)
        )

    def dead_letter(self, exchange_id: ExchangeId) -> DeadLetter | None:
        with self._reader.connect() as connection:
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
