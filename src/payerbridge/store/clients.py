"""Organizations allowed to call us, each with a bearer credential we issued (pre-SMART).

Only the credential's sha256 is kept: a stolen database does not hand out access, and
a lookup by hash is a constant-time index probe rather than a comparison per client.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import Engine

from payerbridge.audit.model import AuditEvent
from payerbridge.errors import Conflict, Issue, StoreConflict
from payerbridge.routing.model import ApiClient
from payerbridge.store.audit import append_audit
from payerbridge.store.dbapi import driver_sql, raw_cursor
from payerbridge.store.tables import api_clients

__all__ = ["SqlClientRegistry", "token_digest"]


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SqlClientRegistry:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._by_token = driver_sql(
            engine.dialect,
            f"SELECT id, name, npi FROM {api_clients.name} "
            "WHERE token_sha256 = :token_sha256 AND disabled_at IS NULL",
        )

    def register(self, client: ApiClient, *, at: datetime, actor: str) -> str:
        """Store the client and return its new bearer credential (shown once, never kept)."""
        token = secrets.token_urlsafe(32)
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    api_clients.insert().values(
                        id=client.client_id,
                        name=client.name,
                        npi=client.npi,
                        token_sha256=token_digest(token),
                        created_at=at,
                    )
                )
                append_audit(
                    connection,
                    AuditEvent(
                        at=at,
                        actor=actor,
                        action="client.register",
                        entity_type="Client",
                        entity_id=client.client_id,
                        outcome="success",
                        detail={"npi": client.npi},
                    ),
                )
        except StoreConflict as exc:
            raise Conflict(
                f"a client with id '{client.client_id}' is already registered",
                issues=[Issue("choose another client id", "id", "duplicate")],
            ) from exc
        return token

    def by_token(self, token: str) -> ApiClient | None:
        # Every authenticated request runs it: DB-API SQL on the writing engine's connections
        # (no write lock is taken; see store.dbapi.raw_cursor).
        with raw_cursor(self._engine) as cursor:
            cursor.execute(self._by_token, {"token_sha256": token_digest(token)})
            row = cursor.fetchone()
        return None if row is None else ApiClient(*row)
