"""Registered partner payers, kept in the database (never in code)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from payerbridge.audit.model import AuditEvent
from payerbridge.routing.capabilities import Capabilities
from payerbridge.routing.model import DEFAULT_PARTNER_SCOPE, Partner, PartnerAuth
from payerbridge.routing.operations import ACTIVE, Operations, parse_operations
from payerbridge.store.audit import append_audit
from payerbridge.store.dbapi import read_row
from payerbridge.store.tables import partners
from payerbridge.types import PartnerId

__all__ = ["SqlPartnerDirectory"]

_FIELDS = (
    "id",
    "name",
    "npi",
    "base_url",
    "client_id",
    "token_url",
    "scope",
    "auth",
    "operations",
)  # what a Partner holds


def _partner(row: Any) -> Partner:
    """A Partner of a row of ``_FIELDS``, by name."""
    return Partner(
        id=row.id,
        name=row.name,
        npi=row.npi,
        base_url=row.base_url,
        client_id=row.client_id,
        token_url=row.token_url,
        scope=row.scope or DEFAULT_PARTNER_SCOPE,
        auth=PartnerAuth(row.auth),
        operations=parse_operations(orjson.loads(row.operations)) if row.operations else ACTIVE,
    )


def _changed(before: Partner, after: Partner) -> list[str]:
    """The fields an update changes (a re-pointed base URL or token endpoint shows here)."""
    fields = ("name", "npi", "base_url", "auth", "client_id", "token_url", "scope")
    return [name for name in fields if getattr(before, name) != getattr(after, name)]


class SqlPartnerDirectory:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine  # reads never take SQLite's write lock

    def register(
        self,
        partner: Partner,
        *,
        actor: str,
        request_id: str | None = None,
        discovered: dict[str, Any] | None = None,
    ) -> bool:
        """Create or update; True when the partner is new. Audited in the same transaction,
        with what changed."""
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            columns = [partners.c[field] for field in _FIELDS]
            before = connection.execute(select(*columns).where(partners.c.id == partner.id)).first()
            existed = before is not None
            module = postgresql if connection.dialect.name == "postgresql" else sqlite
            statement = module.insert(partners).values(
                id=partner.id,
                name=partner.name,
                npi=partner.npi,
                base_url=partner.base_url,
                client_id=partner.client_id,
                token_url=partner.token_url,
                scope=partner.scope,
                auth=partner.auth.value,
                created_at=now,
                updated_at=now,
            )
            changes = {
                "name": partner.name,
                "npi": partner.npi,
                "base_url": partner.base_url,
                "client_id": partner.client_id,
                "token_url": partner.token_url,
                "scope": partner.scope,
                "auth": partner.auth.value,
                "updated_at": now,
            }
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[partners.c.id],
                    set_=changes,
                )
            )
            append_audit(
                connection,
                AuditEvent(
                    at=now,
                    actor=actor,
                    action="partner.register",
                    entity_type="Partner",
                    entity_id=partner.id,
                    outcome="updated" if existed else "created",
                    request_id=request_id,
                    detail={
                        "base_url": partner.base_url,
                        "changed": _changed(_partner(before), partner) if before else [],
                        **({"discovered": discovered} if discovered else {}),
                    },
                ),
            )
        return not existed

    def get(self, partner_id: PartnerId) -> Partner | None:
        row = read_row(self._engine, partners, "id", partner_id, columns=_FIELDS)
        return _partner(row) if row else None

    def list(self) -> list[Partner]:
        with self._reader.connect() as connection:
            columns = [partners.c[field] for field in _FIELDS]
            rows = connection.execute(select(*columns).order_by(partners.c.id)).all()
        return [_partner(row) for row in rows]

    def set_operations(
        self,
        partner_id: PartnerId,
        operations: Operations,
        *,
        actor: str,
        request_id: str | None = None,
    ) -> bool:
        """Replace how the partner is operated, audited with before and after; False
        when no such partner."""
        now = datetime.now(UTC)
        document = operations.to_json()
        with self._engine.begin() as connection:
            before = connection.execute(
                select(partners.c.operations).where(partners.c.id == partner_id)
            ).first()
            if before is None:
                return False
            connection.execute(
                update(partners)
                .where(partners.c.id == partner_id)
                .values(operations=orjson.dumps(document).decode(), updated_at=now)
            )
            append_audit(
                connection,
                AuditEvent(
                    at=now,
                    actor=actor,
                    action="partner.operations",
                    entity_type="Partner",
                    entity_id=partner_id,
                    outcome=operations.status.value,
                    request_id=request_id,
                    detail={
                        "before": orjson.loads(before.operations) if before.operations else None,
                        "after": document,
                    },
                ),
            )
        return True

    def capabilities(self, partner_id: PartnerId) -> Capabilities | None:
        """The last reading of the partner's capabilities; None if never read."""
        row = read_row(self._engine, partners, "id", partner_id, columns=("capabilities",))
        if row is None or row.capabilities is None:
            return None
        return Capabilities.from_json(orjson.loads(row.capabilities))

    def record_capabilities(
        self,
        partner_id: PartnerId,
        capabilities: Capabilities,
        *,
        changes: Sequence[str],
        actor: str,
        request_id: str | None = None,
    ) -> None:
        """Keep a new reading, audited with what it changed."""
        with self._engine.begin() as connection:
            connection.execute(
                update(partners)
                .where(partners.c.id == partner_id)
                .values(
                    capabilities=orjson.dumps(capabilities.to_json()).decode(),
                    capabilities_read_at=capabilities.read_at,
                )
            )
            append_audit(
                connection,
                AuditEvent(
                    at=capabilities.read_at,
                    actor=actor,
                    action="partner.capabilities",
                    entity_type="Partner",
                    entity_id=partner_id,
                    outcome="changed" if changes else "unchanged",
                    request_id=request_id,
                    detail={"changes": list(changes), "capabilities": capabilities.to_json()},
                ),
            )
