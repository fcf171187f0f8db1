"""What the new payer holds of received data, for reconciling an answer with it: what
one old payer's exchanges for a member stored (to find what it no longer sends), its
removal, and what other sources hold in the member's compartments: resources carrying
given business identifiers (conflicts), their Patients (differences), and the plan's own
Patients carrying the member id (the one Patient, ADR 0054).

Writes run in the unit of work the store is bound to (``within``, ADR 0051), on its
DB-API cursor (as ``SqlMemberStore.write`` does, after the exchange's moves)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, and_, literal, not_, or_, select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

from payerbridge.exchange.model import IdentifierKey
from payerbridge.exchange.ports import HeldFor
from payerbridge.store.at_rest import at_rest
from payerbridge.store.dbapi import DialectSql
from payerbridge.store.members import (
    EXCHANGE_SOURCE,
    ONBOARDING_SOURCE,
    ResourceSql,
    is_received,
    remove_rows,
)
from payerbridge.store.sealed_fields import RESOURCE_BODY
from payerbridge.store.tables import exchanges, fhir_resources, fhir_tokens, onboardings
from payerbridge.store.unit_of_work import UnitBound

__all__ = ["SqlReceivedStore"]

# Received data only (rows of EXCHANGE_SOURCE and ONBOARDING_SOURCE): ``payerbridge
# import`` writes its own sources, never reconciled.


class ReceivedSql(DialectSql):
    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        # A row's source names the exchange that wrote it last: those of one holder.
        self.held = self.sql(
            f"SELECT ref FROM {fhir_resources.name} WHERE source IN "
            f"(SELECT '{EXCHANGE_SOURCE}' || id FROM {exchanges.name} WHERE "
            "client_id = :client_id AND member_key = :member_key AND partner_id = :partner_id)"
        )


def _stored_by(held_for: HeldFor) -> ColumnElement[bool]:
    """Rows whose source is an exchange of ``held_for``, or an onboarding of the client
    with the same old payer: asked only within the member's compartments, what such an
    onboarding stored there is that old payer's data about the member (ADR 0054), the
    same resources under the same ids, not another source to compare with."""
    by_exchange = fhir_resources.c.source.in_(
        select(literal(EXCHANGE_SOURCE) + exchanges.c.id).where(
            exchanges.c.client_id == held_for.client_id,
            exchanges.c.member_key == held_for.member_key,
            exchanges.c.partner_id == held_for.partner_id,
        )
    )
    by_onboarding = fhir_resources.c.source.in_(
        select(literal(ONBOARDING_SOURCE) + onboardings.c.id).where(
            onboardings.c.client_id == held_for.client_id,
            onboardings.c.partner_id == held_for.partner_id,
        )
    )
    return or_(by_exchange, by_onboarding)


class SqlReceivedStore(UnitBound):
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine

    def held_refs(self, held_for: HeldFor) -> list[str]:
        """The refs of what the holder's exchanges stored, read in the unit it is bound to."""
        sql_of = self._writing()
        cursor = sql_of.cursor()
        cursor.execute(
            ReceivedSql.of(sql_of.dialect).held,
            {
                "client_id": held_for.client_id,
                "member_key": held_for.member_key,
                "partner_id": held_for.partner_id,
            },
        )
        return [str(row[0]) for row in cursor.fetchall()]

    def remove(self, refs: Sequence[str]) -> None:
        """Delete the resources and their search tokens, in the unit it is bound to."""
        if not refs:
            return
        sql_of = self._writing()
        remove_rows(sql_of.cursor(), ResourceSql.of(sql_of.dialect), refs)

    def with_identifiers(
        self, patient_ids: Sequence[str], keys: Sequence[IdentifierKey], *, other_than: HeldFor
    ) -> list[dict[str, Any]]:
        """The resources in the compartments ``patient_ids`` that carry one of ``keys``
        (type, identifier system, value), but those ``other_than`` stored."""
        if not patient_ids or not keys:
            return []
        found: dict[str, dict[str, Any]] = {}
        at = at_rest(self._reader)
        with self._reader.connect() as connection:
            for start in range(0, len(keys), 200):
                chunk = keys[start : start + 200]
                matches = or_(
                    *(
                        and_(
                            fhir_tokens.c.resource_type == kind,
                            fhir_tokens.c.system == system,
                            fhir_tokens.c.value_key == at.token_key(value),
                        )
                        for kind, system, value in chunk
                    )
                )
                rows = connection.execute(
                    select(fhir_resources.c.ref, fhir_resources.c.body)
                    .join(fhir_tokens, fhir_tokens.c.ref == fhir_resources.c.ref)
                    .where(
                        fhir_tokens.c.param == "identifier",
                        matches,
                        fhir_resources.c.patient_id.in_(list(patient_ids)),
                        not_(_stored_by(other_than)),
                    )
                ).all()
                for row in rows:
                    if row.ref not in found:
                        found[row.ref] = orjson.loads(at.open(row.body, RESOURCE_BODY, row.ref))
        return [found[ref] for ref in sorted(found)]

    def plan_patients(self, member_id: str) -> list[dict[str, Any]]:
        """The plan's own Patients (loaded, not received) carrying an identifier whose
        value is ``member_id``, in any system (the caller judges type and value)."""
        at = at_rest(self._reader)
        received = is_received()
        query = (
            select(fhir_resources.c.ref, fhir_resources.c.body)
            .join(fhir_tokens, fhir_tokens.c.ref == fhir_resources.c.ref)
            .where(
                fhir_tokens.c.resource_type == "Patient",
                fhir_tokens.c.param == "identifier",
                fhir_tokens.c.value_key == at.token_key(member_id),
                not_(received),
            )
            .distinct()
            .order_by(fhir_resources.c.ref)
        )
        with self._reader.connect() as connection:
            rows = connection.execute(query).all()
        return [orjson.loads(at.open(row.body, RESOURCE_BODY, row.ref)) for row in rows]

    def source_patients(
        self, patient_ids: Sequence[str], *, other_than: HeldFor
    ) -> list[tuple[str, dict[str, Any]]]:
        """Received Patients in the compartments with the partner whose exchange or
        onboarding stored them, but those ``other_than`` stored."""
        if not patient_ids:
            return []
        at = at_rest(self._reader)
        found: dict[str, tuple[str, Any]] = {}
        # Stored by an exchange, or by an onboarding (ADR 0054): each names its old payer.
        for runs, prefix in ((exchanges, EXCHANGE_SOURCE), (onboardings, ONBOARDING_SOURCE)):
            query = (
                select(fhir_resources.c.ref, fhir_resources.c.body, runs.c.partner_id)
                .join(runs, fhir_resources.c.source == literal(prefix) + runs.c.id)
                .where(
                    fhir_resources.c.patient_id.in_(list(patient_ids)),
                    fhir_resources.c.resource_type == "Patient",
                    not_(_stored_by(other_than)),
                )
            )
            with self._reader.connect() as connection:
                for row in connection.execute(query).all():
                    found[row.ref] = (str(row.partner_id), row.body)
        return [
            (partner, orjson.loads(at.open(body, RESOURCE_BODY, ref)))
            for ref, (partner, body) in sorted(found.items())
        ]
