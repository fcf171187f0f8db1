"""A replicated source's files in the member store (ADR 0031): the files as received
(sealed), the refs each gave, and the resources they gave, written where ``payerbridge
import`` puts them (``write_batch``) as the source's (``source:<id>``). What a file gives
and what changed is ``backends.files``'s; this store keeps and reads
(``backends.ports.SourceFileStore``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from payerbridge.backends.model import (
    FileBytes,
    FileContent,
    KeptSourceFile,
    MappedResource,
    NewSourceFile,
)
from payerbridge.store.at_rest import at_rest
from payerbridge.store.dbapi import cursor_of
from payerbridge.store.file_pieces import KeptPieces, has_pieces, keep_pieces
from payerbridge.store.members import (
    ResourceRow,
    ResourceSql,
    SqlMemberStore,
    remove_rows,
    write_batch,
)
from payerbridge.store.sealed_fields import RESOURCE_BODY, SOURCE_FILE
from payerbridge.store.search_index import token_entries
from payerbridge.store.tables import (
    fhir_resources,
    source_file_resources,
    source_files,
    source_members,
)
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork
from payerbridge.types import MemberId

__all__ = ["SqlSourceFiles", "SqlSourceMembers", "SqlSourceWriter"]

_CHUNK = 500  # refs per IN (...)


def _connection(unit: UnitOfWork) -> Connection:
    return sql_unit(unit).connection


class SqlSourceFiles:
    """``SourceFileStore``: the files and what they gave, in the caller's unit."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def find(self, unit: UnitOfWork, source_id: str, sha256: str) -> str | None:
        found: str | None = (
            _connection(unit)
            .execute(
                select(source_files.c.id).where(
                    source_files.c.source_id == source_id, source_files.c.sha256 == sha256
                )
            )
            .scalar_one_or_none()
        )
        return found

    def add(self, unit: UnitOfWork, file: NewSourceFile) -> None:
        connection = _connection(unit)
        connection.execute(
            insert(source_files).values(
                id=file.id,
                source_id=file.source_id,
                name=file.name,
                sha256=file.sha256,
                size=file.content.size,
                body=b"",  # kept in sealed pieces (issue 71): a roster or claim file
                mapping=file.mapping,
                received_at=unit.now,
                mapped_at=unit.now,
                report="{}",
            )
        )
        with file.content.open() as stream:
            size = keep_pieces(connection, file.id, stream)
        if size != file.content.size:  # it changed as it was read: the size as kept
            connection.execute(
                update(source_files).where(source_files.c.id == file.id).values(size=size)
            )

    def kept(self, unit: UnitOfWork, source_id: str) -> list[KeptSourceFile]:
        # Purged or erased (ADR 0038) leaves neither a whole body (kept before 0056)
        # nor pieces.
        has_body = or_(func.length(source_files.c.body) > 0, has_pieces(source_files.c.id))
        rows = _connection(unit).execute(
            select(
                source_files.c.id,
                source_files.c.name,
                source_files.c.sha256,
                has_body.label("has_body"),
            )
            .where(source_files.c.source_id == source_id)
            .order_by(source_files.c.received_at, source_files.c.id)
        )
        return [KeptSourceFile(r.id, r.name, r.sha256, bool(r.has_body)) for r in rows]

    def content(self, unit: UnitOfWork, file: KeptSourceFile) -> FileContent:
        """The kept file's content: its pieces, checked whole before any is read for
        mapping (a tampered file fails closed here); a file kept whole before 0056 as
        the bytes it was."""
        connection = _connection(unit)
        row = connection.execute(
            select(source_files.c.body, source_files.c.size).where(source_files.c.id == file.id)
        ).one()
        if len(row.body):
            # Sealed for the file's id (ADR 0044) and kept whole, before 0056.
            return FileBytes(at_rest(connection).open(row.body, SOURCE_FILE, file.id))
        pieces = KeptPieces(connection, file.id, row.size, file.sha256)
        pieces.verify()
        return pieces

    def given_by(self, unit: UnitOfWork, file_id: str) -> set[str]:
        return set(
            _connection(unit)
            .execute(
                select(source_file_resources.c.ref).where(
                    source_file_resources.c.file_id == file_id
                )
            )
            .scalars()
        )

    def held_elsewhere(
        self, unit: UnitOfWork, refs: Sequence[str], *, source: str
    ) -> dict[str, tuple[str, bytes]]:
        keys = at_rest(sql_unit(unit))
        return {
            row.ref: (row.source, keys.open(row.body, RESOURCE_BODY, row.ref))
            for row in _connection(unit).execute(
                select(fhir_resources.c.ref, fhir_resources.c.source, fhir_resources.c.body).where(
                    fhir_resources.c.ref.in_(refs),
                    fhir_resources.c.source != source,
                )
            )
        }

    def stored(self, unit: UnitOfWork, refs: Sequence[str]) -> dict[str, bytes]:
        connection = _connection(unit)
        keys = at_rest(connection)
        return {
            ref: keys.open(body, RESOURCE_BODY, ref)
            for ref, body in connection.execute(
                select(fhir_resources.c.ref, fhir_resources.c.body).where(
                    fhir_resources.c.ref.in_(refs)
                )
            ).all()
        }

    def keep(
        self,
        unit: UnitOfWork,
        file_id: str,
        resources: Sequence[MappedResource],
        *,
        source: str,
        fresh: Sequence[str],
    ) -> None:
        connection = _connection(unit)
        write_batch(
            connection, [_row(resource) for resource in resources], source=source, at=unit.now
        )
        if fresh:
            # A ref the file gave in an earlier batch is kept once: ignored here, not
            # remembered by the caller for the whole file (issue 71).
            module = postgresql if connection.dialect.name == "postgresql" else sqlite
            connection.execute(
                module.insert(source_file_resources).on_conflict_do_nothing(),
                [{"file_id": file_id, "ref": ref} for ref in fresh],
            )

    def forget(self, unit: UnitOfWork, file_id: str, refs: Sequence[str]) -> None:
        """Drop what the file no longer gives, but for what another kept file of the
        source still gives (an enrollment's Patient in every 834, say)."""
        connection = _connection(unit)
        for start in range(0, len(refs), _CHUNK):
            chunk = refs[start : start + _CHUNK]
            connection.execute(
                delete(source_file_resources).where(
                    source_file_resources.c.file_id == file_id,
                    source_file_resources.c.ref.in_(chunk),
                )
            )
            still = set(
                connection.execute(
                    select(source_file_resources.c.ref).where(
                        source_file_resources.c.ref.in_(chunk)
                    )
                ).scalars()
            )
            gone = [ref for ref in chunk if ref not in still]
            if gone:
                with cursor_of(connection) as cursor:
                    remove_rows(cursor, ResourceSql.of(connection.dialect), gone)

    def report(self, unit: UnitOfWork, file_id: str, report: dict[str, Any]) -> None:
        _connection(unit).execute(
            update(source_files)
            .where(source_files.c.id == file_id)
            .values(report=orjson.dumps(report).decode())
        )

    def remapped(self, unit: UnitOfWork, file_id: str, mapping: str) -> None:
        _connection(unit).execute(
            update(source_files)
            .where(source_files.c.id == file_id)
            .values(mapping=mapping, mapped_at=unit.now)
        )

    def files(self, source_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    source_files.c.id,
                    source_files.c.name,
                    source_files.c.sha256,
                    source_files.c.size,
                    source_files.c.mapping,
                    source_files.c.received_at,
                    source_files.c.mapped_at,
                    source_files.c.report,
                )
                .where(source_files.c.source_id == source_id)
                .order_by(source_files.c.received_at, source_files.c.id)
            ).all()
        return [
            {
                "id": r.id,
                "name": r.name,
                "sha256": r.sha256,
                "size": r.size,
                "mapping": r.mapping,
                "received_at": r.received_at.isoformat(),
                "mapped_at": r.mapped_at.isoformat(),
                "report": orjson.loads(r.report),
            }
            for r in rows
        ]


def _row(resource: MappedResource) -> ResourceRow:
    """The row of a mapped resource, its JSON text as the intake serialised it."""
    return ResourceRow(
        resource_type=resource.resource_type,
        resource_id=resource.resource["id"],
        patient_id=resource.patient_id,
        body=resource.body,
        tokens=tuple(token_entries(resource.resource)),
    )


class SqlSourceMembers:
    """Which member is which at a live source: their id there, read with its roster."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def keys_of(self, member: MemberId) -> list[tuple[str, str]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(source_members.c.source_id, source_members.c.source_key)
                .where(source_members.c.member_id == member)
                .order_by(source_members.c.source_id)
            ).all()
        return [(row.source_id, row.source_key) for row in rows]

    def link(self, unit: UnitOfWork, source_id: str, pairs: Sequence[tuple[str, str]]) -> None:
        if not pairs:
            return
        connection = sql_unit(unit).connection
        keys = [key for key, _ in pairs]
        for start in range(0, len(keys), 500):
            connection.execute(
                delete(source_members).where(
                    source_members.c.source_id == source_id,
                    source_members.c.source_key.in_(keys[start : start + 500]),
                )
            )
        connection.execute(
            insert(source_members),
            [
                {
                    "source_id": source_id,
                    "source_key": key,
                    "member_id": member,
                    "updated_at": unit.now,
                }
                for key, member in dict(pairs).items()
            ],
        )


class SqlSourceWriter:
    """Writes what a live source gave, on whichever path the unit began: a unit that
    has not begun takes the Core connection, so that a roster's members can be indexed
    (Core statements) in it after their rows are written; an answer's unit, begun on
    the DB-API path by its Idempotency-Key, is written on its cursor."""

    def __init__(self, members: SqlMemberStore) -> None:
        self.members = members

    def write(
        self,
        unit: UnitOfWork,
        resources: list[tuple[dict[str, Any], str | None]],
        *,
        source: str,
        at: datetime,
    ) -> None:
        sql = sql_unit(unit)
        if not sql.has_begun:
            sql.connection  # noqa: B018  (begins the unit on the Core path)
        self.members.write(unit, resources, source=source, at=at)

    def prune(
        self, unit: UnitOfWork, *, source: str, member: str, types: frozenset[str], keep: set[str]
    ) -> int:
        """Remove the member's ``types`` kept from ``source`` but those in ``keep``, on the
        unit's cursor; how many."""
        sql = sql_unit(unit)
        cursor = sql.cursor()
        dialect = ResourceSql.of(sql.dialect)
        select_text, params = dialect.one_of(
            "SELECT ref FROM fhir_resources WHERE source = :source AND patient_id = :member "
            "AND resource_type {one_of}",
            sorted(types),
        )
        cursor.execute(select_text, {**params, "source": source, "member": member})
        stale = [row[0] for row in cursor.fetchall() if row[0] not in keep]
        remove_rows(cursor, dialect, stale)
        return len(stale)
