"""Old-payer side of Idempotency-Key: the answer to a (client, key), replayed to a retry.

A call first *claims* its key (an insert that only one caller can win), does its work,
then *completes* the claim: the stored answer and the call's audit events commit in
one transaction, so a retried call either finds the answer (and has no side effect
of its own) or finds nothing was done. A claim left by a process that died mid-call
goes stale after ``stale_after`` and may be taken over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import StoreConflict
from payerbridge.idempotency import Claim, ClaimStatus, StoredResponse
from payerbridge.store.audit import append_audit
from payerbridge.store.tables import idempotent_responses

__all__ = ["SqlIdempotencyStore"]

_PENDING = 0  # status of a claimed key whose answer is not stored yet


class SqlIdempotencyStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def claim(
        self,
        client_id: str,
        key: str,
        *,
        operation: str,
        request_hash: str,
        now: datetime,
        stale_after: timedelta,
    ) -> Claim:
        table = idempotent_responses
        where = (table.c.client_id == client_id, table.c.idempotency_key == key)
        try:
            with self._engine.begin() as connection:
                row = connection.execute(select(table).where(*where).with_for_update()).first()
                if row is None:
                    connection.execute(
                        table.insert().values(
                            client_id=client_id,
                            idempotency_key=key,
                            operation=operation,
                            request_hash=request_hash,
                            status=_PENDING,
                            media_type="",
                            body="",
                            created_at=now,
                        )
                    )
                    return Claim(ClaimStatus.CLAIMED)
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
        except StoreConflict:  # a concurrent first claim won the insert
            return Claim(ClaimStatus.IN_FLIGHT)

    def complete(
        self,
        client_id: str,
        key: str,
        response: StoredResponse,
        events: Sequence[AuditEvent],
    ) -> None:
        table = idempotent_responses
        with self._engine.begin() as connection:
            connection.execute(
                table.update()
                .where(table.c.client_id == client_id, table.c.idempotency_key == key)
                .values(status=response.status, media_type=response.media_type, body=response.body)
            )
            for event in events:
                append_audit(connection, event)

    def purge(self, *, before: datetime) -> int:
        """Forget answers (and dead claims) made before ``before``: a retry later than the
        retention period is a new call. Returns how many were dropped."""
        table = idempotent_responses
        with self._engine.begin() as connection:
            result = connection.execute(table.delete().where(table.c.created_at < before))
        return int(result.rowcount or 0)

    def release(self, client_id: str, key: str) -> None:
        """Give a claim back (the call failed without an answer worth keeping)."""
        table = idempotent_responses
        with self._engine.begin() as connection:
            connection.execute(
                table.delete().where(
                    table.c.client_id == client_id,
                    table.c.idempotency_key == key,
                    table.c.status == _PENDING,
                )
            )
