"""A replicated source's files, the use cases on the ``SourcesUnit`` (ADR 0051): a file
mapped and kept, every kept file mapped again with the version the sources file names
now. Each is one ``with uow:``, with its audit events."""

from __future__ import annotations

from dataclasses import dataclass, field

from payerbridge.audit.model import AuditEvent
from payerbridge.backends.ingestion import FileReport
from payerbridge.backends.model import FileContent
from payerbridge.backends.unit import SourcesUnit
from payerbridge.transactions import UnitOfWork

__all__ = ["IngestFile", "RemapSource", "ingest_file", "remap_source"]


@dataclass(frozen=True)
class IngestFile:
    """A file of a replicated source, as ``actor`` gave it: its content read in pieces
    (a path on disk, or an upload's bytes), never held whole on its way (issue 71)."""

    source_id: str
    name: str
    content: FileContent = field(repr=False)  # member data: never in a log or a traceback
    actor: str = "system"


@dataclass(frozen=True)
class RemapSource:
    """Every kept file of a replicated source, mapped again as ``actor`` asks."""

    source_id: str
    actor: str = "system"


def ingest_file(command: IngestFile, uow: SourcesUnit) -> FileReport:
    """Map and keep one file of a replicated source, in one transaction with its audit
    event (``actor`` gave it); the members whose Patient or Coverage it gave are
    indexed for matching in it."""
    ingestion = uow.sources
    spec = ingestion.sources.replicated(command.source_id)
    mapping = ingestion.sources.library.get(spec.mapping_ref)
    with uow:
        report = ingestion.files.ingest(uow, spec, mapping, command.name, command.content)
        uow.record(_event(uow, command.actor, "source.ingest", report))
    if report.counts:
        ingestion.after_load()
    return report


def remap_source(command: RemapSource, uow: SourcesUnit) -> list[FileReport]:
    """Map every kept file of a replicated source again with the mapping version the
    sources file now names (a new one, or one rolled back to), in one transaction,
    each file's run audited."""
    ingestion = uow.sources
    spec = ingestion.sources.replicated(command.source_id)
    mapping = ingestion.sources.library.get(spec.mapping_ref)
    with uow:
        reports = ingestion.files.remap(uow, spec, mapping)
        uow.record(*(_event(uow, command.actor, "source.remap", r) for r in reports))
    return reports


def _event(unit: UnitOfWork, actor: str, action: str, report: FileReport) -> AuditEvent:
    """A file's run as the audit trail keeps it: ids, digests and counts, no values."""
    return AuditEvent(
        at=unit.now,
        actor=actor,
        action=action,
        entity_type="SourceFile",
        entity_id=report.file_id or report.sha256,
        outcome="duplicate" if report.duplicate else "mapped",
        detail={
            "source": report.source_id,
            "sha256": report.sha256,
            "mapping": report.mapping,
            "records": report.records,
            "records_mapped": report.mapped,
            "records_quarantined": report.records_quarantined,
            "records_not_mapped": report.records_not_mapped,
            "warnings": dict(sorted(report.warnings.items())),
            "resources": dict(sorted(report.counts.items())),
            "problems": report.problem_count,
            "quarantined": report.held,
            "conflicts": report.conflicts,
            "changes": dict(sorted(report.changes.items())),
        },
    )
