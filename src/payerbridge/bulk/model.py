"""A bulk job as it is kept: who asked for what, how far it has got, and what it produced."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from payerbridge.types import BulkJobId, ClientId

__all__ = [
    "BulkJob",
    "BulkReason",
    "FINISHED",
    "JobKind",
    "JobStatus",
    "OutputFile",
    "PDEX_VERSIONS",
]

# The PDex versions whose $bulk-member-match answer we write (``fhir.bulk_member_match``).
PDEX_VERSIONS = ("2.1", "2.2")


class JobKind(StrEnum):
    MEMBER_MATCH = "bulk-member-match"
    GROUP_EXPORT = "group-export"  # Group/{id}/$davinci-data-export
    PATIENT_EXPORT = "patient-export"  # Patient/$export
    PROVIDER_EXPORT = "provider-export"  # a provider's Group, Provider Access (ADR 0059)
    PROVIDER_MEMBER_MATCH = "provider-member-match"  # Group/$provider-member-match (ADR 0059)

    @property
    def is_member_match(self) -> bool:
        return self in (JobKind.MEMBER_MATCH, JobKind.PROVIDER_MEMBER_MATCH)


class JobStatus(StrEnum):
    ACCEPTED = "accepted"  # recorded, its workflow enqueued
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # by its client (DELETE): gone for good


class BulkReason(StrEnum):
    """Why a bulk job, or one member of a $bulk-member-match, did not get what was asked,
    where the job says so itself (stored, in the audit trail, in its status); each has its
    runbook, ``docs/runbooks/<code>.md``."""

    # The card guard (HRex mm-7) refused the member: stored as its result, told in the
    # job's error file as ``throttled``.
    THROTTLED = "nomatch-throttled"
    # The member's Consent could not be read: its consent decision is a deny.
    CONSENT_UNREADABLE = "consent-unreadable"
    # The whole job failed (its status answers 500 with why).
    JOB_FAILED = "job-failed"


FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True)
class OutputFile:
    """One NDJSON file of a completed job, as its manifest lists it."""

    type: str  # the resourceType of every line
    name: str  # the file's name in its URL
    count: int  # lines
    error: bool = False  # the manifest's error file (OperationOutcomes), not output


@dataclass(frozen=True)
class BulkJob:
    id: BulkJobId
    client_id: ClientId  # the only client that may see, poll, download or cancel it
    requester_npi: str
    kind: JobKind
    status: JobStatus
    pdex_version: str
    request_url: str  # the kick-off request's URL, for the manifest
    total: int  # units of work (members)
    done: int  # units committed: where a resumed run starts
    lines: int  # output lines committed (an export's): the next line's seq
    created_at: datetime
    updated_at: datetime
    transaction_time: datetime  # what the output reflects, for the manifest
    expires_at: datetime | None = None  # when its output goes (set on completion)
    output: tuple[OutputFile, ...] = ()
    error: str | None = None  # why it failed, for its client (no member data)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def file(self, name: str) -> OutputFile | None:
        return next((f for f in self.output if f.name == name), None)
