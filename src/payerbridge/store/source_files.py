"""A replicated source's files in the member store (ADR 0031): each file read, mapped
and kept in one transaction, with what it gave, so that a new mapping version can map
every kept file again and say what changed.

The resources go where ``payerbridge import`` puts them (``write_batch``), as the
source's (``source:<id>``); the members whose Patient or Coverage a file gave are
indexed for matching in the same transaction.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, delete, insert, select, update

from payerbridge.backends.ingestion import (
    MAX_REPORTED_PROBLEMS,
    Batch,
    FileReport,
    HoldResources,
    ProfileCheck,
    ProvenanceOf,
    conflict,
    differing_fields,
    map_batches,
)
from payerbridge.backends.mapping import Mapping
from payerbridge.backends.readers import read_stream
from payerbridge.backends.sources import ReplicatedSourceSpec
from payerbridge.fhir.provenance import SourceMapping, source_provenance
from payerbridge.fhir.resources import compartment_patient
from payerbridge.routing.model import Organization
from payerbridge.store.at_rest import at_rest
from payerbridge.store.dbapi import cursor_of
from payerbridge.store.members import (
    ResourceRow,
    ResourceSql,
    SqlMemberStore,
    remove_rows,
    write_batch,
)
from payerbridge.store.sealed_fields import RESOURCE_BODY, SOURCE_FILE
from payerbridge.store.tables import (
    fhir_resources,
    source_file_resources,
    source_files,
    source_members,
)
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import UnitOfWork
from payerbridge.types import MemberId

__all__ = ["SqlSourceFiles", "SqlSourceMembers", "SqlSourceWriter", "provenance_by"]

logger = logging.getLogger(__name__)

_MEMBER_TYPES = frozenset({"Patient", "Coverage"})
IndexMembers = Callable[[UnitOfWork, Sequence[str]], object]


def provenance_by(us: Organization) -> ProvenanceOf:
    """The source Provenance of what a mapping made, with ``us`` as its custodian."""

    def provenance(
        provenance_id: str,
        targets: list[dict[str, Any]],
        mapping: Mapping,
        source_id: str,
        recorded: datetime,
    ) -> dict[str, Any]:
        made = SourceMapping(source_id, mapping.source_format, mapping.tag)
        return source_provenance(provenance_id, targets, made, custodian=us, recorded=recorded)

    return provenance


class SqlSourceFiles:
    def __init__(
        self,
        engine: Engine,
        *,
        us: Organization,
        check: ProfileCheck,
        hold: HoldResources,
        index_members: IndexMembers,
        new_id: Callable[[], str],
    ) -> None:
        self.engine = engine
        self.us = us
        self.check = check
        self.hold = hold
        self.index_members = index_members
        self.new_id = new_id

    def ingest(
        self, unit: UnitOfWork, spec: ReplicatedSourceSpec, mapping: Mapping, name: str, body: bytes
    ) -> FileReport:
        """Map and keep one file of ``spec``'s, in ``unit``; the same file again (by
        digest) is reported as a duplicate and changes nothing."""
        digest = hashlib.sha256(body).hexdigest()
        report = FileReport(spec.id, name, digest, str(mapping.ref))
        connection = sql_unit(unit).connection
        existing = connection.execute(
            select(source_files.c.id).where(
                source_files.c.source_id == spec.id, source_files.c.sha256 == digest
            )
        ).scalar_one_or_none()
        if existing is not None:
            report.file_id, report.duplicate = existing, True
            return report
        file_id = self.new_id()
        report.file_id = file_id
        connection.execute(
            insert(source_files).values(
                id=file_id,
                source_id=spec.id,
                name=name[:300],
                sha256=digest,
                size=len(body),
                # Sealed for the file's id (ADR 0044): a roster or claim file as received.
                body=at_rest(connection).seal_bytes(body, SOURCE_FILE, file_id),
                mapping=str(mapping.ref),
                received_at=unit.now,
                mapped_at=unit.now,
                report="{}",
            )
        )
        self._map_file(unit, spec, mapping, file_id, name, body, report, previous=None)
        return report

    def remap(
        self, unit: UnitOfWork, spec: ReplicatedSourceSpec, mapping: Mapping
    ) -> list[FileReport]:
        """Map every kept file of ``spec`` again with ``mapping`` (a new version, or the
        one rolled back to), in ``unit``: each report says what was added, changed (other
        than the mapping's tag), left unchanged and no longer given (removed)."""
        connection = sql_unit(unit).connection
        files = connection.execute(
            select(
                source_files.c.id, source_files.c.name, source_files.c.body, source_files.c.sha256
            )
            .where(source_files.c.source_id == spec.id)
            .order_by(source_files.c.received_at, source_files.c.id)
        ).all()
        reports = []
        for row in files:
            report = FileReport(spec.id, row.name, row.sha256, str(mapping.ref), file_id=row.id)
            if not row.body:
                # Purged or erased (ADR 0038): mapping nothing would remove all it gave.
                report.body_gone = True
                reports.append(report)
                continue
            previous = set(
                connection.execute(
                    select(source_file_resources.c.ref).where(
                        source_file_resources.c.file_id == row.id
                    )
                ).scalars()
            )
            body = at_rest(connection).open(row.body, SOURCE_FILE, row.id)
            self._map_file(unit, spec, mapping, row.id, row.name, body, report, previous)
            connection.execute(
                update(source_files)
                .where(source_files.c.id == row.id)
                .values(mapping=str(mapping.ref), mapped_at=unit.now)
            )
            reports.append(report)
        return reports

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

    def _map_file(
        self,
        unit: UnitOfWork,
        spec: ReplicatedSourceSpec,
        mapping: Mapping,
        file_id: str,
        name: str,
        body: bytes,
        report: FileReport,
        previous: set[str] | None,
    ) -> None:
        connection = sql_unit(unit).connection
        touched: dict[str, None] = {}
        seen: set[str] = set()

        batches = map_batches(
            read_stream(mapping.input, io.BytesIO(body), name, mapping.input_options),
            mapping,
            source_id=spec.id,
            namespace=spec.namespace,
            check=self.check,
            compartment_of=compartment_patient,
            provenance=provenance_by(self.us),
            file_digest=report.sha256,
            recorded=unit.now,
        )
        for batch in batches:
            self._note(report, batch)
            if batch.held:
                self.hold(unit, spec.id, mapping, batch.held)
            if batch.resources:
                self._keep(unit, file_id, batch, report, previous, seen, touched, mapping)
        if previous is not None:
            gone = sorted(previous - seen)
            report.changes["removed"] = len(gone)
            self._remove(connection, file_id, gone)
        connection.execute(
            update(source_files)
            .where(source_files.c.id == file_id)
            .values(report=orjson.dumps(report.to_json()).decode())
        )
        if touched:
            self.index_members(unit, list(touched))
        logger.info(
            "source file mapped",
            extra={
                "source": spec.id,
                "file_sha256": report.sha256,
                "mapping": report.mapping,
                "records": report.records,
                "problems": report.problem_count,
                "quarantined": report.held,
            },
        )

    def _without_conflicts(
        self, unit: UnitOfWork, rows: list[ResourceRow], report: FileReport, mapping: Mapping
    ) -> list[ResourceRow]:
        source = f"source:{report.source_id}"
        refs = [r.ref for r in rows if r.resource_type != "Provenance"]
        keys = at_rest(sql_unit(unit))
        others = dict(
            (row.ref, (row.source, keys.open(row.body, RESOURCE_BODY, row.ref)))
            for row in sql_unit(unit).connection.execute(
                select(fhir_resources.c.ref, fhir_resources.c.source, fhir_resources.c.body).where(
                    fhir_resources.c.ref.in_(refs),
                    fhir_resources.c.source != source,
                )
            )
        )
        if not others:
            return rows
        kept, conflicts = [], []
        for row in rows:
            other = others.get(row.ref)
            if other is None:
                kept.append(row)
                continue
            fields = differing_fields(orjson.loads(other[1]), orjson.loads(row.body))
            if not fields:
                continue  # the same as the other source gave: nothing to keep twice
            conflicts.append(conflict(orjson.loads(row.body), other[0], fields))
        if conflicts:
            report.conflicts += len(conflicts)
            self.hold(unit, report.source_id, mapping, conflicts)
        return kept

    def _keep(
        self,
        unit: UnitOfWork,
        file_id: str,
        batch: Batch,
        report: FileReport,
        previous: set[str] | None,
        seen: set[str],
        touched: dict[str, None],
        mapping: Mapping,
    ) -> None:
        """Write a batch's resources as the source's, and note what the file gave. A
        resource another source already gave differently is not overwritten: it is held
        as a conflict, naming the other source and the fields that differ."""
        connection = sql_unit(unit).connection
        rows = [ResourceRow.from_resource(r, member) for r, member in batch.resources]
        rows = self._without_conflicts(unit, rows, report, mapping)
        if not rows:
            return
        if previous is not None:
            self._classify(connection, rows, report)
        write_batch(connection, rows, source=f"source:{report.source_id}", at=unit.now)
        refs = [row.ref for row in rows]
        fresh = [
            ref
            for ref in dict.fromkeys(refs)
            if ref not in seen and (previous is None or ref not in previous)
        ]
        seen.update(refs)
        if fresh:
            connection.execute(
                insert(source_file_resources), [{"file_id": file_id, "ref": ref} for ref in fresh]
            )
        for row in rows:
            if row.resource_type in _MEMBER_TYPES and row.patient_id is not None:
                touched[row.patient_id] = None

    @staticmethod
    def _note(report: FileReport, batch: Batch) -> None:
        report.records += batch.records
        report.counts.update(batch.counts)
        report.held += len(batch.held)
        report.problem_count += len(batch.problems)
        room = MAX_REPORTED_PROBLEMS - len(report.problems)
        if room > 0:
            report.problems.extend(batch.problems[:room])

    @staticmethod
    def _classify(connection: Any, rows: Sequence[ResourceRow], report: FileReport) -> None:
        """Count the mapped resources as added, changed or unchanged (not their
        Provenance, which each run records anew)."""
        keys = at_rest(connection)
        stored = {
            ref: keys.open(body, RESOURCE_BODY, ref)
            for ref, body in connection.execute(
                select(fhir_resources.c.ref, fhir_resources.c.body).where(
                    fhir_resources.c.ref.in_([row.ref for row in rows])
                )
            ).all()
        }
        for row in rows:
            if row.resource_type == "Provenance":
                continue  # ours, recorded anew by every mapping run
            before = stored.get(row.ref)
            if before is None:
                report.changes["added"] += 1
            elif _content(before) == _content(row.body):
                report.changes["unchanged"] += 1
            else:
                report.changes["changed"] += 1

    @staticmethod
    def _remove(connection: Any, file_id: str, refs: Iterable[str]) -> None:
        """Drop what the file no longer gives, but for what another kept file of the
        source still gives (an enrollment's Patient in every 834, say)."""
        refs = list(refs)
        for start in range(0, len(refs), 500):
            chunk = refs[start : start + 500]
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


def _content(body: str | bytes) -> bytes:
    """A resource's content without its meta (versions, the mapping's tag): what a
    reader of the data would see change."""
    resource = orjson.loads(body)
    resource.pop("meta", None)
    return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)


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
