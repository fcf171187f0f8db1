"""The member data store: FHIR resources as JSON rows plus their search tokens.

A body is sealed at rest for its ``Type/id`` and a token kept as a keyed blind key of its
value (ADR 0044): the keys come with the engine (``store.at_rest``).

One adapter among the future backend adapters (roadmap: backends); callers see
plain FHIR dicts, never rows. Writes go through ``write_batch`` so the importer and
the exchange share one upsert path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Engine, and_, func, or_, select, update
from sqlalchemy.engine import Dialect

from payerbridge.store.at_rest import AtRest, at_rest
from payerbridge.store.dbapi import DialectSql, cursor_of, insert_rows, raw_cursor
from payerbridge.store.sealed_fields import RESOURCE_BODY
from payerbridge.store.search_index import token_entries
from payerbridge.store.tables import fhir_resources, fhir_tokens
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.timestamps import utc_iso
from payerbridge.transactions import UnitOfWork
from payerbridge.types import MemberId

# Where received records come from: an exchange's answer, an onboarding's chunk (a
# row's source is the prefix and that run's id).
EXCHANGE_SOURCE = "exchange:"
ONBOARDING_SOURCE = "onboarding:"
RECEIVED_SOURCES = (EXCHANGE_SOURCE, ONBOARDING_SOURCE)

__all__ = [
    "EXCHANGE_SOURCE",
    "ONBOARDING_SOURCE",
    "RECEIVED_SOURCES",
    "ResourceRow",
    "ResourceSql",
    "SqlMemberStore",
    "is_received",
    "resolve_compartments",
    "opened_resource",
    "opened_row",
    "with_meta",
    "remove_rows",
    "write_batch",
]


@dataclass(frozen=True)
class ResourceRow:
    """A resource ready to store: ``body`` is its JSON text as it should be kept."""

    resource_type: str
    resource_id: str
    patient_id: str | None
    body: str
    tokens: tuple[tuple[str, str, str], ...]

    @property
    def ref(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"

    @classmethod
    def from_resource(cls, resource: dict[str, Any], patient_id: str | None) -> ResourceRow:
        return cls(
            resource_type=resource["resourceType"],
            resource_id=resource["id"],
            patient_id=patient_id,
            body=orjson.dumps(resource).decode(),
            tokens=tuple(token_entries(resource)),
        )


class ResourceSql(DialectSql):
    """``write_batch``'s statements as DB-API SQL: every imported file and every received
    Bundle goes through them, and as SQLAlchemy expressions they cost more in Python
    (compiling, binding each row) than the database spends on them."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        # A resource stored again replaces the body and counts a new version.
        self.upsert = self.rows_insert(
            fhir_resources,
            (
                "ref",
                "resource_type",
                "resource_id",
                "patient_id",
                "version_id",
                "last_updated",
                "source",
                "body",
            ),
            " ON CONFLICT (ref) DO UPDATE SET patient_id = excluded.patient_id, "
            f"version_id = {fhir_resources.name}.version_id + 1, "
            "last_updated = excluded.last_updated, source = excluded.source, "
            "body = excluded.body",
        )
        self.tokens = self.rows_insert(
            fhir_tokens, ("ref", "resource_type", "param", "system", "value", "value_key")
        )
        self._drop_tokens = f"DELETE FROM {fhir_tokens.name} WHERE ref {{one_of}}"
        self._drop_resources = f"DELETE FROM {fhir_resources.name} WHERE ref {{one_of}}"

    def drop_tokens(self, refs: list[str]) -> tuple[str, dict[str, Any]]:
        """The statement and parameters that delete the tokens of ``refs``."""
        return self.one_of(self._drop_tokens, refs)

    def drop_resources(self, refs: list[str]) -> tuple[str, dict[str, Any]]:
        """The statement and parameters that delete the resources of ``refs``."""
        return self.one_of(self._drop_resources, refs)


def remove_rows(cursor: Any, sql: ResourceSql, refs: Sequence[str]) -> None:
    """Delete resources and their search tokens, in the cursor's transaction: what a
    complete answer no longer sends, a mapping no longer gives, a live source no longer
    holds."""
    refs = list(refs)
    for start in range(0, len(refs), 500):
        chunk = refs[start : start + 500]
        cursor.execute(*sql.drop_tokens(chunk))
        cursor.execute(*sql.drop_resources(chunk))


def write_batch(
    connection: Connection, rows: Sequence[ResourceRow], *, source: str, at: datetime
) -> None:
    """Insert or replace resources and re-index their tokens, inside the caller's transaction."""
    if rows:
        keys = at_rest(connection)
        with cursor_of(connection) as cursor:
            sql = ResourceSql.of(connection.dialect)
            _write_rows(cursor, sql, rows, source=source, at=at, keys=keys)


def _write_rows(
    cursor: Any,
    sql: ResourceSql,
    rows: Sequence[ResourceRow],
    *,
    source: str,
    at: datetime,
    keys: AtRest,
) -> None:
    unique = {row.ref: row for row in rows}  # last one wins, as a sequence of PUTs would
    stamp = sql.timestamp(at)
    cursor.execute(*sql.drop_tokens(list(unique)))
    resources = [
        {
            "ref": ref,
            "resource_type": row.resource_type,
            "resource_id": row.resource_id,
            "patient_id": row.patient_id,
            "version_id": 1,
            "last_updated": stamp,
            "source": source,
            "body": keys.seal_bytes(row.body, RESOURCE_BODY, ref),
        }
        for ref, row in unique.items()
    ]
    tokens = [
        {
            "ref": ref,
            "resource_type": row.resource_type,
            "param": param,
            "system": system,
            "value": "",
            "value_key": keys.token_key(value),
        }
        for ref, row in unique.items()
        for param, system, value in row.tokens
    ]
    insert_rows(cursor, (sql.upsert, resources), (sql.tokens, tokens))


def with_meta(row: Any, keys: AtRest) -> dict[str, Any]:
    """The resource of a row (``ref``, ``body``, ``version_id``, ``last_updated``), opened
    and with its ``meta`` filled."""
    return _filled(
        keys.open(row.body, RESOURCE_BODY, row.ref),
        row.version_id,
        _last_updated(row.last_updated),
    )


def opened_row(sql: DialectSql, keys: AtRest, row: Sequence[Any]) -> dict[str, Any]:
    """``with_meta`` of a row read by DB-API that starts ``ref, body, version_id,
    last_updated`` (the stamp as the driver gives it)."""
    ref, body, version_id, stamp = row[0], row[1], row[2], row[3]
    return _filled(keys.open(body, RESOURCE_BODY, ref), version_id, _stamp(sql, stamp))


def _filled(opened: bytes, version_id: int, last_updated: str) -> dict[str, Any]:
    """The resource of an opened body, with its ``meta`` filled from its row's columns."""
    resource: dict[str, Any] = orjson.loads(opened)
    meta = resource.get("meta")
    if type(meta) is not dict:
        meta = dict(meta or {})
        resource["meta"] = meta
    # Otherwise just parsed, so ours: filled in place, not copied.
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = last_updated
    return resource


@lru_cache(maxsize=256)
def _stamp(sql: DialectSql, stored: Any) -> str:
    """A ``last_updated`` as the driver gives it, rendered as ``meta.lastUpdated``."""
    moment = sql.read_timestamp(stored)
    assert moment is not None  # the column is not nullable
    return utc_iso(moment)


# The hot reads of member data (a bulk export's chunks, $everything's first page) as DB-API
# SQL: as SQLAlchemy statements their rows' processing cost more than the database.
_COMPARTMENT_PAGE = (
    f"SELECT ref, body, version_id, last_updated FROM {fhir_resources.name} "
    "WHERE patient_id = :patient AND ref > :after ORDER BY ref LIMIT :count"
)
_COMPARTMENTS = (
    f"SELECT ref, body, version_id, last_updated, patient_id FROM {fhir_resources.name} "
    "WHERE patient_id {one_of} ORDER BY patient_id, ref"
)
_READ_MANY = (
    f"SELECT ref, body, version_id, last_updated FROM {fhir_resources.name} WHERE ref {{one_of}}"
)


def opened_resource(bind: Any, ref: str, body: bytes | memoryview) -> dict[str, Any]:
    """A body of ``fhir_resources`` as stored, opened (for readers of the table outside
    these stores: the tools, the tests); ``bind``: an engine or connection of its database."""
    resource: dict[str, Any] = orjson.loads(at_rest(bind).open(body, RESOURCE_BODY, ref))
    return resource


# A batch of rows is written with one timestamp: each is rendered once.
_last_updated = lru_cache(maxsize=256)(utc_iso)


_COLUMNS = (
    fhir_resources.c.ref,
    fhir_resources.c.body,
    fhir_resources.c.version_id,
    fhir_resources.c.last_updated,
)


class SqlMemberStore:
    """Reads and writes member data in the SQL database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, reader: Engine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine  # reads never take SQLite's write lock

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        with self._reader.connect() as connection:
            row = connection.execute(
                select(*_COLUMNS).where(fhir_resources.c.ref == f"{resource_type}/{resource_id}")
            ).first()
        return with_meta(row, at_rest(self._reader)) if row else None

    def read_many(self, refs: Iterable[str]) -> list[dict[str, Any]]:
        """The resources of ``refs`` that exist. DB-API SQL (``raw_cursor``): a bulk export
        asks for a few shared resources at a time, once for each member that reaches one
        not read yet, and as a SQLAlchemy statement each ask cost more than its rows."""
        wanted = sorted(set(refs))
        if not wanted:
            return []
        sql = DialectSql.of(self._engine.dialect)
        keys = at_rest(self._engine)
        found: list[dict[str, Any]] = []
        with raw_cursor(self._engine) as cursor:  # the writer's: see raw_cursor
            for start in range(0, len(wanted), 500):
                cursor.execute(*sql.one_of(_READ_MANY, wanted[start : start + 500]))
                found.extend(opened_row(sql, keys, row) for row in cursor.fetchall())
        return found

    def compartment(self, patient_id: MemberId) -> list[dict[str, Any]]:
        """Every resource in the member's Patient compartment, the Patient first."""
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(*_COLUMNS, fhir_resources.c.resource_type)
                .where(fhir_resources.c.patient_id == patient_id)
                .order_by(
                    (fhir_resources.c.resource_type != "Patient"),
                    fhir_resources.c.resource_type,
                    fhir_resources.c.ref,
                )
            ).all()
        keys = at_rest(self._reader)
        return [with_meta(row, keys) for row in rows]

    def stream_compartment(
        self, patient_id: MemberId, *, chunk: int = 2000
    ) -> Iterator[dict[str, Any]]:
        """The member's compartment in chunks of ``chunk`` rows, by reference: what is
        held at once stays bounded however large the member's history."""
        after = ""
        sql = DialectSql.of(self._engine.dialect)
        keys = at_rest(self._engine)
        text = sql.sql(_COMPARTMENT_PAGE)
        while True:
            with raw_cursor(self._engine) as cursor:  # the writer's: see raw_cursor
                cursor.execute(text, {"patient": patient_id, "after": after, "count": chunk})
                rows = cursor.fetchall()
            for row in rows:
                yield opened_row(sql, keys, row)
            if len(rows) < chunk:
                return
            after = rows[-1][0]

    def stream_compartments(
        self, patient_ids: Sequence[MemberId], *, chunk: int = 2000
    ) -> Iterator[tuple[MemberId, dict[str, Any]]]:
        """The compartments of several members as ``(patient_id, resource)``, one member's
        after another, about ``chunk`` rows per read: a bulk job's chunk in a few round
        trips instead of one per member, and bounded however large a member's history
        (a member with more than ``chunk`` resources is read on its own, in pages).

        Members are read in groups whose counted rows fit in ``chunk``, each group with
        one ``IN`` list and no cursor across members: paging across members by
        (patient, ref) leaves PostgreSQL's generic plan walking the whole index."""
        counts = self._resource_counts(patient_ids)
        group: list[MemberId] = []
        rows_in_group = 0
        for patient_id in patient_ids:
            count = counts.get(patient_id, 0)
            if count == 0:
                continue
            if count > chunk:
                for resource in self.stream_compartment(patient_id, chunk=chunk):
                    yield patient_id, resource
                continue
            if rows_in_group + count > chunk:
                yield from self._compartments_of(group)
                group, rows_in_group = [], 0
            group.append(patient_id)
            rows_in_group += count
        if group:
            yield from self._compartments_of(group)

    def _resource_counts(self, patient_ids: Sequence[MemberId]) -> dict[MemberId, int]:
        table = fhir_resources
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(table.c.patient_id, func.count())
                .where(table.c.patient_id.in_(patient_ids))
                .group_by(table.c.patient_id)
            ).all()
        return {MemberId(patient_id): count for patient_id, count in rows}

    def _compartments_of(
        self, patient_ids: Sequence[MemberId]
    ) -> Iterator[tuple[MemberId, dict[str, Any]]]:
        sql = DialectSql.of(self._engine.dialect)
        keys = at_rest(self._engine)
        with raw_cursor(self._engine) as cursor:  # the writer's: see raw_cursor
            cursor.execute(*sql.one_of(_COMPARTMENTS, patient_ids))
            rows = cursor.fetchall()
        for row in rows:  # ref, body, version_id, last_updated, patient_id
            yield MemberId(row[4]), opened_row(sql, keys, row)

    def resource_types(self, patient_id: MemberId) -> set[str]:
        """The resource types in the member's compartment (what segmentation must judge)."""
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(fhir_resources.c.resource_type)
                .where(fhir_resources.c.patient_id == patient_id)
                .distinct()
            ).all()
        return {row.resource_type for row in rows}

    def resource_types_of(self, patient_ids: Sequence[MemberId]) -> dict[MemberId, set[str]]:
        """``resource_types`` of many members in one query (a bulk job's chunk)."""
        found: dict[MemberId, set[str]] = {patient: set() for patient in patient_ids}
        if not found:
            return found
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(fhir_resources.c.patient_id, fhir_resources.c.resource_type)
                .where(fhir_resources.c.patient_id.in_(sorted(found)))
                .distinct()
            ).all()
        for row in rows:
            found[MemberId(row.patient_id)].add(row.resource_type)
        return found

    def owner_of(self, resource_type: str, resource_id: str) -> MemberId | None:
        """The member whose compartment holds the resource; None for shared resources."""
        with self._reader.connect() as connection:
            owner: str | None = connection.execute(
                select(fhir_resources.c.patient_id).where(
                    fhir_resources.c.ref == f"{resource_type}/{resource_id}"
                )
            ).scalar_one_or_none()
        return None if owner is None else MemberId(owner)

    def find_refs_by_token(
        self, resource_type: str, param: str, value: str, system: str | None = None
    ) -> list[str]:
        """Refs of resources whose token matches; ``system=None`` matches any system."""
        condition = and_(
            fhir_tokens.c.resource_type == resource_type,
            fhir_tokens.c.param == param,
            fhir_tokens.c.value_key == at_rest(self._reader).token_key(value),
        )
        if system is not None:
            condition = and_(condition, fhir_tokens.c.system == system)
        with self._reader.connect() as connection:
            rows = connection.execute(
                select(fhir_tokens.c.ref).where(condition).distinct().order_by(fhir_tokens.c.ref)
            ).all()
        return [row.ref for row in rows]

    def write(
        self,
        unit: UnitOfWork,
        resources: list[tuple[dict[str, Any], str | None]],
        *,
        source: str,
        at: datetime,
    ) -> None:
        """Store ``(resource, compartment patient)`` pairs in ``unit``."""
        rows = [
            ResourceRow.from_resource(resource, patient_id) for resource, patient_id in resources
        ]
        sql_of = sql_unit(unit)
        sql = ResourceSql.of(sql_of.dialect)
        keys = at_rest(sql_of)
        for start in range(0, len(rows), 1000):
            batch = rows[start : start + 1000]
            _write_rows(sql_of.cursor(), sql, batch, source=source, at=at, keys=keys)

    def received_members(self) -> list[MemberId]:
        """The members the plan holds received records for (an exchange's answer or an
        onboarding's chunk), by id."""
        query = (
            select(fhir_resources.c.patient_id)
            .where(fhir_resources.c.patient_id.is_not(None), is_received())
            .distinct()
            .order_by(fhir_resources.c.patient_id)
        )
        with self._reader.connect() as connection:
            return [MemberId(row.patient_id) for row in connection.execute(query)]

    def count(self, source_prefix: str | None = None) -> int:
        query = select(func.count()).select_from(fhir_resources)
        if source_prefix is not None:
            query = query.where(fhir_resources.c.source.startswith(source_prefix))
        with self._reader.connect() as connection:
            return int(connection.execute(query).scalar_one())


def is_received() -> ColumnElement[bool]:
    """Rows an exchange or an onboarding wrote: received, not the plan's own."""
    return or_(*(fhir_resources.c.source.startswith(prefix) for prefix in RECEIVED_SOURCES))


def resolve_compartments(connection: Connection, pending: dict[str, str]) -> None:
    """Give resources whose compartment is only known through another resource (Provenance
    targeting an Observation, say) the compartment of that resource."""
    if not pending:
        return
    targets = sorted(set(pending.values()))
    owners: dict[str, str] = {}
    for start in range(0, len(targets), 500):
        chunk = targets[start : start + 500]
        for row in connection.execute(
            select(fhir_resources.c.ref, fhir_resources.c.patient_id).where(
                fhir_resources.c.ref.in_(chunk)
            )
        ):
            if row.patient_id:
                owners[row.ref] = row.patient_id
    for ref, target in pending.items():
        owner = owners.get(target)
        if owner:
            connection.execute(
                update(fhir_resources).where(fhir_resources.c.ref == ref).values(patient_id=owner)
            )
