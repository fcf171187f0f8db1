"""What the platform asks of a source that is asked at request time (a live source), and
what it answers: the records it gave and, when it could not give all, the gaps.

A live source answers in its own format; the source's mapping turns what it gave into
our resources, as it does for a replicated source's files, which are kept, with what
each gave, where ``SourceFileStore`` keeps them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from payerbridge.backends.model import (
    FileContent,
    KeptSourceFile,
    MappedResource,
    NewSourceFile,
)
from payerbridge.transactions import UnitOfWork

__all__ = [
    "GAP_CODES",
    "LiveSource",
    "RecordsQuery",
    "SourceAnswer",
    "SourceFileStore",
    "SourceGap",
]

# Why a source's records are missing from an answer (the completeness code system).
GAP_CODES = ("source-unavailable", "source-timeout", "source-error")


@dataclass(frozen=True)
class SourceGap:
    """What a source did not give: its types, why, and whether asking again may help.
    ``text`` names no member data (statuses, counts, the source's id)."""

    source: str
    types: tuple[str, ...]
    code: str  # one of GAP_CODES
    text: str
    retry_may_help: bool = True

    def to_json(self) -> dict[str, Any]:
        """The gap as the API and the audit trail show it."""
        return {
            "source": self.source,
            "types": list(self.types),
            "code": self.code,
            "text": self.text,
            "retry_may_help": self.retry_may_help,
        }


@dataclass(frozen=True)
class RecordsQuery:
    """A member's records at a source: ``member_key`` is the member's id there (kept
    when the roster was read), ``types`` None for every type the source holds."""

    member_key: str
    types: frozenset[str] | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class SourceAnswer:
    """What a source gave within its budget: records in its own format (for a FHIR
    server, its resources as it sent them), and the gaps, empty when it gave all."""

    records: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[SourceGap] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.gaps


class LiveSource(Protocol):
    """A backend asked at request time (ADR 0031): a FHIR server the plan already runs."""

    @property
    def id(self) -> str: ...

    @property
    def types(self) -> frozenset[str]:
        """The resource types it answers for."""
        ...

    def roster(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """The members it holds, in its own format (for a FHIR server: its Patients,
        through its Bulk Data ``$export`` when it offers one, else a paged search);
        PartnerUnavailable/PartnerRejected when it cannot be read."""
        ...

    def records(self, query: RecordsQuery, *, budget_seconds: float) -> SourceAnswer:
        """The member's records, answered within ``budget_seconds`` whatever happens:
        what could not be read in time, or at all, is a gap, never an exception."""
        ...


class SourceFileStore(Protocol):
    """A replicated source's files as received (sealed), what each gave, and the
    resources they gave, kept as the source's (``store.source_files``). Every call but
    ``files`` runs in the caller's unit of work."""

    def find(self, unit: UnitOfWork, source_id: str, sha256: str) -> str | None:
        """The id of the source's file with this digest, if one is kept."""
        ...

    def add(self, unit: UnitOfWork, file: NewSourceFile) -> None:
        """Keep ``file`` as received now (its content read a piece at a time), mapped now
        with its mapping, its report empty."""
        ...

    def kept(self, unit: UnitOfWork, source_id: str) -> list[KeptSourceFile]:
        """The source's files, in the order they were received."""
        ...

    def content(self, unit: UnitOfWork, file: KeptSourceFile) -> FileContent:
        """The kept file's content as received (a file with ``has_body``), read in pieces
        in ``unit``; DataKeyUnavailable when what is kept is not what was received."""
        ...

    def given_by(self, unit: UnitOfWork, file_id: str) -> set[str]:
        """The refs of the resources the file gave when it was last mapped."""
        ...

    def held_elsewhere(
        self, unit: UnitOfWork, refs: Sequence[str], *, source: str
    ) -> dict[str, tuple[str, bytes]]:
        """The resources of ``refs`` kept as another source's than ``source``: ref →
        (that source, the body as kept)."""
        ...

    def stored(self, unit: UnitOfWork, refs: Sequence[str]) -> dict[str, bytes]:
        """The bodies of the resources of ``refs`` as kept now, by ref."""
        ...

    def keep(
        self,
        unit: UnitOfWork,
        file_id: str,
        resources: Sequence[MappedResource],
        *,
        source: str,
        fresh: Sequence[str],
    ) -> None:
        """Write ``resources`` as ``source``'s, and note that the file gave ``fresh``
        (refs it had not given before; one it has given already is ignored)."""
        ...

    def forget(self, unit: UnitOfWork, file_id: str, refs: Sequence[str]) -> None:
        """The file no longer gives ``refs``: drop those no other file of its gives."""
        ...

    def report(self, unit: UnitOfWork, file_id: str, report: dict[str, Any]) -> None:
        """Keep the file's report (``FileReport.to_json``)."""
        ...

    def remapped(self, unit: UnitOfWork, file_id: str, mapping: str) -> None:
        """The file mapped again now, with ``mapping``."""
        ...

    def files(self, source_id: str) -> list[dict[str, Any]]:
        """The source's files and their reports, as the API shows them."""
        ...
