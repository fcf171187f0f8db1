"""Old-payer side of Idempotency-Key: the answer to a (client, key), replayed to a retry.

A call first *claims* its key (an insert that only one caller can win), does its work,
then *completes* the claim: the stored answer and the call's audit events (recorded on
the same unit of work by the caller) commit in one transaction, so a retried call
either finds the answer (and has no side effect of its own) or finds nothing was done.
A claim left by a process that died mid-call goes stale after ``stale_after`` and may
be taken over. Each method writes in the caller's unit of work.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from payerbridge.idempotency.model import Claim, ClaimStatus, KeyClaim, StoredResponse
from payerbridge.store.at_rest import at_rest
from payerbridge.store.dbapi import DialectSql
from payerbridge.store.sealed_fields import IDEMPOTENT_BODY
from payerbridge.store.tables import idempotent_responses
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId

__all__ = ["SqlIdempotencyStore"]

_PENDING = 0  # status of a claimed key whose answer is not stored yet


class SqlIdempotencyStore:
    def claim(self, unit: UnitOfWork, claim: KeyClaim, *, now: datetime) -> Claim:
        client_id, key, operation = claim.client_id, claim.key, claim.operation
        request_hash, stale_after = claim.request_hash, claim.stale_after
        table = idempotent_responses
        where = (table.c.client_id == client_id, table.c.idempotency_key == key)
        connection = sql_unit(unit).connection
        row = connection.execute(select(table).where(*where).with_for_update()).first()
        if row is None:
            insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
            inserted = connection.execute(
                insert(table)
                .values(
                    client_id=client_id,
                    idempotency_key=key,
                    operation=operation,
                    request_hash=request_hash,
                    status=_PENDING,
                    media_type="",
                    body="",
                    created_at=now,
                )
                .on_conflict_do_nothing()
                .returning(table.c.status)
            ).first()
            # Nothing inserted: a concurrent first claim won (the unit stays usable).
            return Claim(ClaimStatus.CLAIMED if inserted else ClaimStatus.IN_FLIGHT)
        if row.operation != operation or row.request_hash != request_hash:
            return Claim(ClaimStatus.MISMATCH)
        if row.status != _PENDING:
            body = at_rest(connection).open(row.body, IDEMPOTENT_BODY, f"{client_id}|{key}")
            return Claim(
                ClaimStatus.ANSWERED,
                StoredResponse(row.status, row.media_type, body.decode()),
            )
        if row.created_at > now - stale_after:
            return Claim(ClaimStatus.IN_FLIGHT)
        connection.execute(table.update().where(*where).values(created_at=now))
        return Claim(ClaimStatus.CLAIMED)  # the earlier holder died mid-call

    def complete(
        self, unit: UnitOfWork, client_id: ClientId, key: str, response: StoredResponse
    ) -> None:
        """Keep the answer; the call's audit events go on ``unit`` with it. In the driver's
        own SQL: it follows the call's own writes in the unit (``$member-match``'s), on the
        unit's DB-API path (``store.unit_of_work``)."""
        sql_of = sql_unit(unit)
        sql_of.cursor().execute(
            _IdempotencySql.of(sql_of.dialect).complete,
            {
                "client_id": client_id,
                "key": key,
                "status": response.status,
                "media_type": response.media_type,
                "body": at_rest(sql_of).seal(response.body, IDEMPOTENT_BODY, f"{client_id}|{key}"),
            },
        )

    def purge(self, unit: UnitOfWork, *, before: datetime) -> int:
        """Forget answers (and dead claims) made before ``before``: a retry later than the
        retention period is a new call. Returns how many were dropped."""
        table = idempotent_responses
        result = sql_unit(unit).connection.execute(
            table.delete().where(table.c.created_at < before)
        )
        return int(result.rowcount or 0)

    def release(self, unit: UnitOfWork, client_id: ClientId, key: str) -> None:
        """Give a claim back (the call failed, or its answer is not one to keep)."""
        sql_of = sql_unit(unit)
        sql_of.cursor().execute(
            _IdempotencySql.of(sql_of.dialect).release,
            {"client_id": client_id, "key": key, "pending": _PENDING},
        )


class _IdempotencySql(DialectSql):
    """Completing and releasing a claim, in the driver's own SQL."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        table = idempotent_responses.name
        where = "WHERE client_id = :client_id AND idempotency_key = :key"
        self.complete = self.sql(
            f"UPDATE {table} SET status = :status, media_type = :media_type, body = :body {where}"
        )
        self.release = self.sql(f"DELETE FROM {table} {where} AND status = :pending")
