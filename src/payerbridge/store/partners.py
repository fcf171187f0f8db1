"""Registered partner payers, kept in the database (never in code)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from payerbridge.audit.model import AuditEvent
from payerbridge.routing.model import Partner
from payerbridge.store.audit import append_audit
from payerbridge.store.tables import partners

__all__ = ["SqlPartnerDirectory"]


def _partner(row: object) -> Partner:
    return Partner(id=row.id, name=row.name, npi=row.npi, base_url=row.base_url)  # type: ignore[attr-defined]


class SqlPartnerDirectory:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def register(self, partner: Partner, *, actor: str, request_id: str | None = None) -> bool:
        """Create or update; True when the partner is new. Audited in the same transaction."""
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            existed = (
                connection.execute(select(partners.c.id).where(partners.c.id == partner.id)).first()
                is not None
            )
            module = postgresql if connection.dialect.name == "postgresql" else sqlite
            statement = module.insert(partners).values(
                id=partner.id,
                name=partner.name,
                npi=partner.npi,
                base_url=partner.base_url,
                created_at=now,
                updated_at=now,
            )
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[partners.c.id],
                    set_={
                        "name": partner.name,
                        "npi": partner.npi,
                        "base_url": partner.base_url,
                        "updated_at": now,
                    },
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
                    detail={"base_url": partner.base_url},
                ),
            )
        return not existed

    def get(self, partner_id: str) -> Partner | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(partners).where(partners.c.id == partner_id)).first()
        return _partner(row) if row else None

    def list(self) -> list[Partner]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(partners).order_by(partners.c.id)).all()
        return [_partner(row) for row in rows]
