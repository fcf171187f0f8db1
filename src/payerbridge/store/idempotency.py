"""Old-payer side of Idempotency-Key: the answer to a (client, key), replayed to a retry.

A call first *claims* its key (an insert that only one caller can win), does its work,
then *completes* the claim: the stored answer and the call's audit events (recorded on
the same unit of work by the caller) commit in one transaction, so a retried call
either finds the answer (and has no side effect of its own) or finds nothing was done.
A claim left by a process that died mid-call goes stale after ``stale_after`` and may
be taken over. Each method writes in the caller's unit of work.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from payerbridge.idempotency import Claim, ClaimStatus, StoredResponse
from payerbridge.store.tables import idempotent_responses
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId

__all__ = ["SqlIdempotencyStore"]

_PENDING = 0  # status of a claimed key whose answer is not stored yet


class SqlIdempotencyStore:
    def claim(
        self,
        unit: UnitOfWork,
        client_id: ClientId,
        key: str,
        *,
        operation: str,
        request_hash: str,
        now: datetime,
        stale_after: timedelta,
    ) -> Claim:
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
            return Claim(
                ClaimStatus.ANSWERED,
                StoredResponse(row.status, row.media_type, row.body),
            )
        if row.created_at > now - stale_after:
            return Claim(ClaimStatus.IN_FLIGHT)
        connection.execute(table.update().where(*where).values(created_at=now))
        return Claim(ClaimStatus.CLAIMED)  # the earlier holder died mid-call

    def complete(
        self, unit: UnitOfWork, client_id: ClientId, key: str, response: StoredResponse
    ) -> None:
        """Keep the answer; the call's audit events go on ``unit`` with it."""
        table = idempotent_responses
        sql_unit(unit).connection.execute(
            table.update()
            .where(table.c.client_id == client_id, table.c.idempotency_key == key)
            .values(status=response.status, media_type=response.media_type, body=response.body)
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
        """Give a claim back (the call failed without an answer worth keeping)."""
        table = idempotent_responses
        sql_unit(unit).connection.execute(
            table.delete().where(
                table.c.client_id == client_id,
                table.c.idempotency_key == key,
                table.c.status == _PENDING,
            )
        )
