"""What the bulk jobs need kept: their rows, each member's result, and the Groups."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from payerbridge.bulk.model import BulkJob, OutputFile
from payerbridge.disclosure.ports import MemberData
from payerbridge.transactions import UnitOfWork
from payerbridge.types import BulkJobId, ClientId, MemberId

__all__ = [
    "BulkJobs",
    "BulkMembers",
    "ExportedMember",
    "LineRead",
    "MemberOutcome",
    "OutputLine",
    "StoredGroup",
]


@dataclass(frozen=True)
class MemberOutcome:
    """One member's result in a ``$bulk-member-match`` job: its MemberBundle's position,
    its bucket (a ``MatchResult`` value) and our Patient's id when matched."""

    position: int
    result: str
    patient_id: MemberId | None


@dataclass(frozen=True)
class StoredGroup:
    """A result Group of a job, owned by the job's client."""

    id: str
    job_id: BulkJobId
    client_id: ClientId
    requester_npi: str
    result: str  # a ``MatchResult`` value: the Group's code
    created_at: datetime
    expires_at: datetime
    body: dict[str, Any]


@dataclass(frozen=True)
class ExportedMember:
    """One member of an export job as the job decided it: the policy its consent allowed
    (None: skipped) and what its decision withheld (references stripped on release)."""

    position: int
    patient_id: MemberId
    policy: str | None
    withheld: tuple[str, ...] = ()
    code_sets: str | None = None  # the label of the code sets its records were judged by
    withheld_count: int = 0  # the resources its decision withheld, as $everything counts them


@dataclass(frozen=True)
class OutputLine:
    """One line to write: a member's resource (its reference, and its body as released
    with the version judged), or a body of our own (no reference)."""

    file: str  # the resource type of its file
    member: int  # the member's position in the job
    ref: str | None = None
    mode: str | None = None  # "match" or "include", as $everything gives it
    body: dict[str, Any] | None = None
    version: int | None = None  # of the member's resource, when it was judged


@dataclass(frozen=True)
class LineRead:
    """A line as read back for a download, with what tells whether its body may still go
    as written: the resource's version now (None when gone) and its member's decision."""

    seq: int
    member: int
    ref: str | None  # None: a body of our own
    body: bytes | None  # the body as written (JSON), kept as bytes all the way out
    version: int | None  # the version judged when written
    current_version: int | None
    decision: ExportedMember | None  # the member's, for a member's resource


class BulkMembers(MemberData, Protocol):
    def received_members(self) -> list[MemberId]:
        """The members the plan holds received records for: the plan's own
        ``Patient/$export`` (ADR 0052)."""
        ...

    def resource_types_of(self, patient_ids: Sequence[MemberId]) -> dict[MemberId, set[str]]:
        """Each member's resource types (``resource_types``), in one read."""
        ...

    def stream_compartments(
        self, patient_ids: Sequence[MemberId]
    ) -> Iterator[tuple[MemberId, dict[str, Any]]]:
        """The members' compartments as ``(patient_id, resource)``, each member's
        resources together, a few rows at a time; a member with none is not named."""
        ...


class BulkJobs(Protocol):
    def create(self, unit: UnitOfWork, job: BulkJob, request_body: bytes) -> None: ...

    def get(self, job_id: BulkJobId) -> BulkJob | None: ...

    def request_body(self, job_id: BulkJobId) -> bytes: ...

    def start(self, unit: UnitOfWork, job_id: BulkJobId, *, at: datetime) -> bool:
        """Accepted to running; False when the job is not waiting to start."""
        ...

    def commit_chunk(
        self,
        unit: UnitOfWork,
        job_id: BulkJobId,
        *,
        done_before: int,
        outcomes: Sequence[MemberOutcome],
        at: datetime,
    ) -> bool:
        """Keep a chunk's outcomes and move the cursor past them, if the job is still
        running with its cursor at ``done_before``; False (nothing written) otherwise:
        it was cancelled, or another run committed the chunk first."""
        ...

    def commit_export_chunk(
        self,
        unit: UnitOfWork,
        job_id: BulkJobId,
        *,
        done_before: int,
        lines_before: int,
        members: Sequence[ExportedMember],
        lines: Sequence[OutputLine],
        at: datetime,
    ) -> bool:
        """Keep a chunk's members and lines (numbered on from ``lines_before``) and move
        both cursors, if the job is still running with its cursors there; else False."""
        ...

    def shared_refs(self, job_id: BulkJobId) -> set[str]:
        """The shared resources (``include`` lines) the job's committed chunks hold:
        each goes once per export, with the first member that reached it."""
        ...

    def file_counts(self, job_id: BulkJobId) -> dict[str, int]:
        """Lines per file of the job."""
        ...

    def released_counts(self, job_id: BulkJobId) -> dict[str, tuple[int, int]]:
        """Of an export: per consent policy, the members released and the resources
        their decisions withheld."""
        ...

    def line_page(self, job_id: BulkJobId, file: str, *, after: int, count: int) -> list[LineRead]:
        """Up to ``count`` lines of one file after line ``after``, in order."""
        ...

    def outcomes(self, job_id: BulkJobId) -> list[MemberOutcome]:
        """The job's member outcomes, in position order."""
        ...

    def complete(
        self,
        unit: UnitOfWork,
        job_id: BulkJobId,
        *,
        groups: Sequence[StoredGroup],
        output: Sequence[OutputFile],
        expires_at: datetime,
        at: datetime,
    ) -> bool:
        """Running to completed, with its Groups and files; False if no longer running."""
        ...

    def fail(self, unit: UnitOfWork, job_id: BulkJobId, *, error: str, at: datetime) -> bool: ...

    def cancel(self, unit: UnitOfWork, job_id: BulkJobId, *, at: datetime) -> bool:
        """Cancelled, its outcomes and Groups dropped; False if already cancelled."""
        ...

    def unstarted(self, *, updated_before: datetime) -> list[tuple[BulkJobId, ClientId]]:
        """(job, client) of every job accepted before then and not started: its process
        may have died between recording it and enqueueing it."""
        ...

    def group(self, group_id: str) -> StoredGroup | None: ...

    def groups_of(self, job_id: BulkJobId) -> list[StoredGroup]:
        """The job's Groups, MatchedMembers first (the order they were written)."""
        ...

    def find_groups(
        self,
        client_id: ClientId,
        *,
        requester_npis: frozenset[str] | None,
        results: frozenset[str] | None,
        now: datetime,
    ) -> list[StoredGroup]:
        """The client's unexpired Groups, of these requesters and results (None: any)."""
        ...

    def purge(self, unit: UnitOfWork, *, now: datetime) -> int:
        """Drop jobs whose output expired, with their outcomes, and expired Groups, in
        ``unit``."""
        ...
