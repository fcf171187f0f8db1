"""The sources' use cases: a replicated source's file mapped and kept, every kept file
mapped again with the version the sources file names now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

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

    def ingest(self, source_id: str, name: str, body: bytes) -> FileReport:
        """Map and keep one file of a replicated source, in one transaction; the members
        whose Patient or Coverage it gave are indexed for matching in it."""
        spec = self.sources.replicated(source_id)
        mapping = self.sources.library.get(spec.mapping_ref)
        with self.transactions.begin() as unit:
            report = self.files.ingest(unit, spec, mapping, name, body)
        if report.counts:
            self.after_load()
        return report

    def remap(self, source_id: str) -> list[FileReport]:
        """Map every kept file of a replicated source again with the mapping version the
        sources file now names (a new one, or one rolled back to), in one transaction."""
        spec = self.sources.replicated(source_id)
        mapping = self.sources.library.get(spec.mapping_ref)
        with self.transactions.begin() as unit:
            return self.files.remap(unit, spec, mapping)
