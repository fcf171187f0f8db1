"""What the sources' use cases (``backends.replicated``) take: the sources of the
deployment, and where a replicated source's files are kept with what they gave."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from payerbridge.backends.ingestion import FileReport
from payerbridge.backends.mapping import Mapping
from payerbridge.backends.model import FileContent
from payerbridge.backends.sources import ReplicatedSourceSpec, Sources
from payerbridge.transactions import UnitOfWork

__all__ = ["SourceFiles", "SourceIngestion"]


class SourceFiles(Protocol):
    """Where a replicated source's files are kept with what they gave (store)."""

    def ingest(
        self,
        unit: UnitOfWork,
        spec: ReplicatedSourceSpec,
        mapping: Mapping,
        name: str,
        content: FileContent,
    ) -> FileReport: ...

    def remap(
        self, unit: UnitOfWork, spec: ReplicatedSourceSpec, mapping: Mapping
    ) -> list[FileReport]: ...

    def files(self, source_id: str) -> list[dict[str, Any]]: ...


class SourceIngestion:
    """The sources of the deployment, and their files mapped and kept: what the
    ``SourcesUnit`` carries for the CLI and the API."""

    def __init__(
        self, sources: Sources, files: SourceFiles, after_load: Callable[[], None]
    ) -> None:
        self.sources = sources
        self.files = files
        self.after_load = after_load  # the database's statistics refreshed
