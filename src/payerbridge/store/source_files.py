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
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, delete, insert, select, update

from payerbridge.backends.ingestion import Batch, Held, ProfileCheck, map_batches
from payerbridge.backends.mapping import Mapping
from payerbridge.backends.model import RecordProblem
from payerbridge.backends.readers import read_stream
from payerbridge.backends.sources import ReplicatedSourceSpec, Sources
from payerbridge.errors import MappingError
from payerbridge.fhir.provenance import source_provenance
from payerbridge.fhir.resources import compartment_patient
from payerbridge.routing.model import Organization
from payerbridge.store.importer import refresh_statistics
from payerbridge.store.members import ResourceRow, write_batch
from payerbridge.store.tables import (
    fhir_resources,
    fhir_tokens,
    source_file_resources,
    source_files,
)
from payerbridge.store.unit_of_work import sql_unit
from payerbridge.transactions import Transactions, UnitOfWork

__all__ = ["FileReport", "SourceIngestion", "SqlSourceFiles", "refuse_to_hold"]

logger = logging.getLogger(__name__)

MAX_REPORTED_PROBLEMS = 100
_MEMBER_TYPES = frozenset({"Patient", "Coverage"})
# Holds what failed its profile, in the ingestion's unit (the quarantine).
HoldResources = Callable[[UnitOfWork, str, Mapping, Sequence[Held]], None]
IndexMembers = Callable[[UnitOfWork, Sequence[str]], object]


@dataclass
class FileReport:
    """What one file gave: counts by type, what was held for its profile, the records
    that could not be read or mapped (the first hundred, each with its line or segment),
    and, when mapped again, what changed."""

    source_id: str
    name: str
    sha256: str
    mapping: str
    file_id: str | None = None
    duplicate: bool = False
    records: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    held: int = 0
    problem_count: int = 0
    problems: list[RecordProblem] = field(default_factory=list)
    changes: Counter[str] = field(default_factory=Counter)  # added, changed, unchanged, removed

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source_id,
            "file": self.name,
            "sha256": self.sha256,
            "mapping": self.mapping,
            "duplicate": self.duplicate,
            "records": self.records,
            "resources": dict(sorted(self.counts.items())),
            "quarantined": self.held,
            "problem_count": self.problem_count,
            "problems": [p.to_json() for p in self.problems],
            "changes": dict(sorted(self.changes.items())),
        }


def refuse_to_hold(
    unit: UnitOfWork, source_id: str, mapping: Mapping, held: Sequence[Held]
) -> None:
    """Where no quarantine is wired, what fails its profile stops the file: never kept,
    never dropped."""
    raise MappingError("resources failed their profile, and no quarantine is wired to hold them")


class SourceIngestion:
    """The sources of the deployment, and their files mapped and kept: what the CLI
    and the API call."""

    def __init__(
        self, sources: Sources, files: SqlSourceFiles, transactions: Transactions, engine: Engine
    ) -> None:
        self.sources = sources
        self.files = files
        self.transactions = transactions
        self.engine = engine

    def ingest(self, source_id: str, name: str, body: bytes) -> FileReport:
        """Map and keep one file of a replicated source, in one transaction; the members
        whose Patient or Coverage it gave are indexed for matching in it."""
        spec = self.sources.replicated(source_id)
        mapping = self.sources.library.get(spec.mapping_ref)
        with self.transactions.begin() as unit:
            report = self.files.ingest(unit, spec, mapping, name, body)
        if report.counts:
            refresh_statistics(self.engine)
        return report

    def remap(self, source_id: str) -> list[FileReport]:
        """Map every kept file of a replicated source again with the mapping version the
        sources file now names (a new one, or one rolled back to), in one transaction."""
        spec = self.sources.replicated(source_id)
        mapping = self.sources.library.get(spec.mapping_ref)
        with self.transactions.begin() as unit:
            return self.files.remap(unit, spec, mapping)


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
                body=body,
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
            previous = set(
                connection.execute(
                    select(source_file_resources.c.ref).where(
                        source_file_resources.c.file_id == row.id
                    )
                ).scalars()
            )
            self._map_file(unit, spec, mapping, row.id, row.name, bytes(row.body), report, previous)
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

        def provenance(
            provenance_id: str,
            targets: list[dict[str, Any]],
            m: Mapping,
            source_id: str,
            at: datetime,
        ) -> dict[str, Any]:
            return source_provenance(
                provenance_id,
                targets,
                custodian=self.us,
                source_id=source_id,
                source_format=m.source_format,
                mapping=m.tag,
                recorded=at,
            )

        batches = map_batches(
            read_stream(mapping.input, io.BytesIO(body), name, mapping.input_options),
            mapping,
            source_id=spec.id,
            namespace=spec.namespace,
            check=self.check,
            compartment_of=compartment_patient,
            provenance=provenance,
            file_digest=report.sha256,
            recorded=unit.now,
        )
        for batch in batches:
            self._note(report, batch)
            if batch.held:
                self.hold(unit, spec.id, mapping, batch.held)
            if batch.resources:
                self._keep(unit, file_id, batch, report, previous, seen, touched)
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

    def _keep(
        self,
        unit: UnitOfWork,
        file_id: str,
        batch: Batch,
        report: FileReport,
        previous: set[str] | None,
        seen: set[str],
        touched: dict[str, None],
    ) -> None:
        """Write a batch's resources as the source's, and note what the file gave."""
        connection = sql_unit(unit).connection
        rows = [ResourceRow.from_resource(r, member) for r, member in batch.resources]
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
        stored = dict(
            connection.execute(
                select(fhir_resources.c.ref, fhir_resources.c.body).where(
                    fhir_resources.c.ref.in_([row.ref for row in rows])
                )
            ).all()
        )
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
                connection.execute(delete(fhir_tokens).where(fhir_tokens.c.ref.in_(gone)))
                connection.execute(delete(fhir_resources).where(fhir_resources.c.ref.in_(gone)))


def _content(body: str) -> bytes:
    """A resource's content without its meta (versions, the mapping's tag): what a
    reader of the data would see change."""
    resource = orjson.loads(body)
    resource.pop("meta", None)
    return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
