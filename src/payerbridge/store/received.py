"""What the new payer holds of received data, for reconciling an answer with it: the
resources in a member's compartment (to find those no longer sent), their removal, and
the resources of other compartments carrying given business identifiers (conflicts).

Writes run in the unit of work the store is bound to (``within``, ADR 0051), on its
DB-API cursor (as ``SqlMemberStore.write`` does, after the exchange's moves)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.engine import Dialect

from payerbridge.exchange.model import IdentifierKey
from payerbridge.store.at_rest import at_rest
from payerbridge.store.dbapi import DialectSql
from payerbridge.store.members import ResourceSql, remove_rows
from payerbridge.store.sealed_fields import RESOURCE_BODY
from payerbridge.store.tables import fhir_resources, fhir_tokens
from payerbridge.store.unit_of_work import UnitBound

__all__ = ["SqlReceivedStore"]

# Received data only: ``payerbridge import`` writes its own sources, never reconciled.
_RECEIVED_PREFIX = "exchange:"


class ReceivedSql(DialectSql):
    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self.held = self.sql(
            f"SELECT ref FROM {fhir_resources.name} WHERE patient_id = :patient_id "
            "AND source LIKE :prefix"
        )


class SqlReceivedStore(UnitBound):
    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine

    def held_refs(self, patient_id: str) -> list[str]:
        """The refs of received resources in the compartment, read in the unit it is bound to."""
        sql_of = self._writing()
        cursor = sql_of.cursor()
        cursor.execute(
            ReceivedSql.of(sql_of.dialect).held,
            {"patient_id": patient_id, "prefix": f"{_RECEIVED_PREFIX}%"},
        )
        return [str(row[0]) for row in cursor.fetchall()]

    def remove(self, refs: Sequence[str]) -> None:
        """Delete the resources and their search tokens, in the unit it is bound to."""
        if not refs:
            return
        sql_of = self._writing()
        remove_rows(sql_of.cursor(), ResourceSql.of(sql_of.dialect), refs)

    def with_identifiers(
        self, patient_ids: Sequence[str], keys: Sequence[IdentifierKey]
    ) -> list[dict[str, Any]]:
        """The resources in the compartments ``patient_ids`` that carry one of ``keys``
        (type, identifier system, value)."""
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
                    )
                ).all()
                for row in rows:
                    if row.ref not in found:
                        found[row.ref] = orjson.loads(at.open(row.body, RESOURCE_BODY, row.ref))
        return [found[ref] for ref in sorted(found)]
