"""Registered partner payers, kept in the database (never in code); written in the
caller's unit of work, which the use case audits (``routing.enrolment``)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from payerbridge.routing.model import (
    ACTIVE,
    DEFAULT_PARTNER_SCOPE,
    Capabilities,
    Operations,
    Partner,
    PartnerAuth,
    endpoints_from_json,
)
from payerbridge.routing.ports import OperationsReplaced
from payerbridge.store.dbapi import read_row
from payerbridge.store.tables import partners
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork
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
    "endpoints",
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
        operations=Operations.from_json(orjson.loads(row.operations)) if row.operations else ACTIVE,
        # A partner kept before its endpoints were has one: its base URL.
        endpoints=endpoints_from_json(orjson.loads(row.endpoints)) if row.endpoints else (),
    )


class SqlPartnerDirectory:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine  # reads never take SQLite's write lock

    def register(self, unit: UnitOfWork, partner: Partner) -> Partner | None:
        """Create or update in ``unit``; the partner as it stood before (None: new)."""
        connection = sql_unit(unit).connection
        columns = [partners.c[field] for field in _FIELDS]
        before = connection.execute(select(*columns).where(partners.c.id == partner.id)).first()
        module = postgresql if connection.dialect.name == "postgresql" else sqlite
        changes = {
            "name": partner.name,
            "npi": partner.npi,
            "base_url": partner.base_url,
            "client_id": partner.client_id,
            "token_url": partner.token_url,
            "scope": partner.scope,
            "auth": partner.auth.value,
            "endpoints": orjson.dumps([e.to_json() for e in partner.endpoints]).decode(),
            "updated_at": unit.now,
        }
        statement = module.insert(partners).values(id=partner.id, created_at=unit.now, **changes)
        connection.execute(
            statement.on_conflict_do_update(index_elements=[partners.c.id], set_=changes)
        )
        return _partner(before) if before is not None else None

    def get(self, partner_id: PartnerId) -> Partner | None:
        row = read_row(self._engine, partners, "id", partner_id, columns=_FIELDS)
        return _partner(row) if row else None

    def list(self) -> list[Partner]:
        with self._reader.connect() as connection:
            columns = [partners.c[field] for field in _FIELDS]
            rows = connection.execute(select(*columns).order_by(partners.c.id)).all()
        return [_partner(row) for row in rows]

    def set_operations(
        self, unit: UnitOfWork, partner_id: PartnerId, operations: Operations
    ) -> OperationsReplaced | None:
        """Replace how the partner is operated, in ``unit``; None when no such partner."""
        connection = sql_unit(unit).connection
        before = connection.execute(
            select(partners.c.operations).where(partners.c.id == partner_id)
        ).first()
        if before is None:
            return None
        connection.execute(
            update(partners)
            .where(partners.c.id == partner_id)
            .values(operations=orjson.dumps(operations.to_json()).decode(), updated_at=unit.now)
        )
        return OperationsReplaced(orjson.loads(before.operations) if before.operations else None)

    def capabilities(self, partner_id: PartnerId) -> Capabilities | None:
        """The last reading of the partner's capabilities; None if never read."""
        row = read_row(self._engine, partners, "id", partner_id, columns=("capabilities",))
        if row is None or row.capabilities is None:
            return None
        return Capabilities.from_json(orjson.loads(row.capabilities))

    def record_capabilities(
        self, unit: UnitOfWork, partner_id: PartnerId, capabilities: Capabilities
    ) -> None:
        """Keep a new reading, in ``unit``."""
        sql_unit(unit).connection.execute(
            update(partners)
            .where(partners.c.id == partner_id)
            .values(
                capabilities=orjson.dumps(capabilities.to_json()).decode(),
                capabilities_read_at=capabilities.read_at,
            )
        )
