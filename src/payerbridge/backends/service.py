"""The sources' use cases: a replicated source's file mapped and kept, every kept file
mapped again with the version the sources file names now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from payerbridge.audit.model import AuditEvent
from payerbridge.backends.ingestion import FileReport
from payerbridge.backends.mapping import Mapping
from payerbridge.backends.sources import ReplicatedSourceSpec, Sources
from payerbridge.transactions import Transactions, UnitOfWork

__all__ = ["SourceFiles", "SourceIngestion"]


class SourceFiles(Protocol):
    """Where a replicated source's files are kept with what they gave (store)."""

    def ingest(
        self, unit: UnitOfWork, spec: ReplicatedSourceSpec, mapping: Mapping, name: str, body: bytes
    ) -> FileReport: ...

    def remap(
        self, unit: UnitOfWork, spec: ReplicatedSourceSpec, mapping: Mapping
    ) -> list[FileReport]: ...

    def files(self, source_id: str) -> list[dict[str, Any]]: ...


class SourceIngestion:
    """The sources of the deployment, and their files mapped and kept: what the CLI
    and the API call."""

    def __init__(
        self,
        sources: Sources,
        files: SourceFiles,
        transactions: Transactions,
        after_load: Callable[[], None],
    ) -> None:
        self.sources = sources
        self.files = files
        self.transactions = transactions
        self.after_load = after_load  # the database's statistics refreshed

    def ingest(
        self, source_id: str, name: str, body: bytes, *, actor: str = "system"
    ) -> FileReport:
        """Map and keep one file of a replicated source, in one transaction with its audit
        event (``actor`` gave it); the members whose Patient or Coverage it gave are
        indexed for matching in it."""
        spec = self.sources.replicated(source_id)
        mapping = self.sources.library.get(spec.mapping_ref)
        with self.transactions.begin() as unit:
            report = self.files.ingest(unit, spec, mapping, name, body)
            unit.record(_event(unit, actor, "source.ingest", report))
        if report.counts:
            self.after_load()
        return report

    def remap(self, source_id: str, *, actor: str = "system") -> list[FileReport]:
        """Map every kept file of a replicated source again with the mapping version the
        sources file now names (a new one, or one rolled back to), in one transaction,
        each file's run audited."""
        spec = self.sources.replicated(source_id)
        mapping = self.sources.library.get(spec.mapping_ref)
        with self.transactions.begin() as unit:
            reports = self.files.remap(unit, spec, mapping)
            unit.record(*(_event(unit, actor, "source.remap", r) for r in reports))
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
            "resources": dict(sorted(report.counts.items())),
            "problems": report.problem_count,
            "quarantined": report.held,
            "conflicts": report.conflicts,
            "changes": dict(sorted(report.changes.items())),
        },
    )
