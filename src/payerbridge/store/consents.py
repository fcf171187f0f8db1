"""Consents as structured rows (``tables.consents``), each with the resource it came from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.engine import Dialect

from payerbridge.audit.model import AuditEvent
from payerbridge.consent.model import (
    ConsentId,
    ConsentPolicy,
    ConsentRecord,
    ConsentRole,
    StoredConsent,
    revoke,
)
from payerbridge.errors import NotFound
from payerbridge.store.at_rest import AtRest, at_rest
from payerbridge.store.dbapi import DialectSql, insert_rows, read_row
from payerbridge.store.sealed_fields import CONSENT_RESOURCE
from payerbridge.store.tables import UtcDateTime, consents
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork
from payerbridge.types import ClientId, MemberId, PartnerId

__all__ = ["SqlConsentStore"]

_COLUMNS = tuple(str(column.name) for column in consents.c)
_TIMESTAMPS = tuple(str(c.name) for c in consents.c if isinstance(c.type, UtcDateTime))


class ConsentSql(DialectSql):
    """Recording an opt-in, in the driver's own SQL: it commits with its exchange's
    submission, whose unit of work is pipelined on PostgreSQL (``store.unit_of_work``)."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self.same = self.sql(
            f"SELECT {', '.join(_COLUMNS)} FROM {consents.name} WHERE member_id = :member_id "
            "AND role = :role AND client_id = :client_id AND resource_hash = :resource_hash "
            "AND revoked_at IS NULL LIMIT 1"
        )
        self.new_consent = self.rows_insert(consents, _COLUMNS)

    def row(self, consent: StoredConsent, keys: AtRest) -> dict[str, Any]:
        record = consent.record
        values = {
            "id": record.consent_id,
            "role": consent.role.value,
            "member_id": record.member_id,
            "policy": record.policy.value,
            "period_start": record.period_start,
            "period_end": record.period_end,
            "source_npi": record.source_npi,
            "recipient_npis": orjson.dumps(list(record.recipient_npis)).decode(),
            "client_id": record.client_id,
            "partner_id": consent.partner_id,
            "performer": record.performer,
            "source_reference": consent.source_reference,
            "resource": keys.seal(
                orjson.dumps(consent.resource), CONSENT_RESOURCE, record.consent_id
            ),
            "resource_hash": record.resource_hash,
            "policy_version": record.policy_version,
            "created_at": consent.created_at,
            "revoked_at": None,
            "revoked_by": None,
        }
        return self.bound(values, _TIMESTAMPS)


def _stored(row: Any, keys: AtRest, *, resource: bool = True) -> StoredConsent:
    record = ConsentRecord(
        consent_id=ConsentId(row.id),
        member_id=MemberId(row.member_id),
        policy=ConsentPolicy(row.policy),
        period_start=row.period_start,
        period_end=row.period_end,
        source_npi=row.source_npi,
        recipient_npis=tuple(orjson.loads(row.recipient_npis)),
        client_id=ClientId(row.client_id),
        performer=row.performer,
        resource_hash=row.resource_hash,
        policy_version=row.policy_version,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )
    return StoredConsent(
        record=record,
        role=ConsentRole(row.role),
        partner_id=None if row.partner_id is None else PartnerId(row.partner_id),
        source_reference=row.source_reference,
        resource=orjson.loads(keys.open(row.resource, CONSENT_RESOURCE, row.id))
        if resource
        else {},
        created_at=row.created_at,
    )


class SqlConsentStore:
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine  # reads never take SQLite's write lock

    def add(self, unit: UnitOfWork, consent: StoredConsent, *, event: AuditEvent) -> StoredConsent:
        """Keep ``consent`` with its audit event in ``unit``; an unrevoked consent of the
        same member, role, client and resource hash is returned instead of a second copy."""
        sql_of = sql_unit(unit)
        record = consent.record
        sql = ConsentSql.of(sql_of.dialect)
        cursor = sql_of.cursor()
        cursor.execute(
            sql.same,
            {
                "member_id": record.member_id,
                "role": consent.role.value,
                "client_id": record.client_id,
                "resource_hash": record.resource_hash,
            },
        )
        same = cursor.fetchone()
        if same is not None:
            return _stored(sql.named(_COLUMNS, _TIMESTAMPS, same), at_rest(sql_of))
        insert_rows(cursor, (sql.new_consent, [sql.row(consent, at_rest(sql_of))]))
        sql_of.record(event)
        return consent

    def get(self, consent_id: str) -> StoredConsent | None:
        row = read_row(self._engine, consents, "id", consent_id)
        return None if row is None else _stored(row, at_rest(self._engine))

    def for_member(self, member_id: MemberId, role: ConsentRole) -> list[StoredConsent]:
        """Newest first."""
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(consents)
                .where(consents.c.member_id == member_id, consents.c.role == role.value)
                .order_by(consents.c.created_at.desc(), consents.c.id.desc())
            ).all()
        return [_stored(row, at_rest(self._reader)) for row in rows]

    def for_members(
        self, member_ids: Sequence[MemberId], role: ConsentRole, *, resources: bool = True
    ) -> dict[MemberId, list[StoredConsent]]:
        found: dict[MemberId, list[StoredConsent]] = {member: [] for member in member_ids}
        if not found:
            return found
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(consents)
                .where(consents.c.member_id.in_(sorted(found)), consents.c.role == role.value)
                .order_by(consents.c.created_at.desc(), consents.c.id.desc())
            ).all()
        keys = at_rest(self._reader)
        for row in rows:
            found[row.member_id].append(_stored(row, keys, resource=resources))
        return found

    def members_disclosed_to(self, client_id: ClientId) -> list[MemberId]:
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(consents.c.member_id)
                .where(
                    consents.c.client_id == client_id,
                    consents.c.role == ConsentRole.DISCLOSE.value,
                    consents.c.revoked_at.is_(None),
                )
                .distinct()
                .order_by(consents.c.member_id)
            ).all()
        return [MemberId(row.member_id) for row in rows]

    def revoke(self, unit: UnitOfWork, consent_id: str, *, at: datetime, by: str) -> StoredConsent:
        """Record the revocation (the earliest instant wins) in ``unit``, under a lock on
        the consent's row."""
        connection = sql_unit(unit).connection
        row = connection.execute(
            select(consents).where(consents.c.id == consent_id).with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"Consent/{consent_id} does not exist")
        stored = _stored(row, at_rest(connection))
        revoked = revoke(stored.record, at=at, by=by)
        if revoked is not stored.record:
            connection.execute(
                consents.update()
                .where(consents.c.id == consent_id)
                .values(revoked_at=revoked.revoked_at, revoked_by=revoked.revoked_by)
            )
        return StoredConsent(
            revoked,
            stored.role,
            stored.partner_id,
            stored.source_reference,
            stored.resource,
            stored.created_at,
        )
