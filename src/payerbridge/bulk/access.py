"""Whose bulk work is whose (ADR 0018): a job, its files and its Groups are the client's
own, and only the client's token (never a member-scoped one) reaches them. Another
client's job, or one cancelled, does not exist for the caller (404); one whose output has
expired is gone (410)."""

from __future__ import annotations

from dataclasses import dataclass

from payerbridge.audit.model import AuditEvent
from payerbridge.bulk.member_match import CancelJob, cancel_job, job_of
from payerbridge.bulk.model import BulkJob, JobStatus, OutputFile
from payerbridge.bulk.unit import BulkUnit
from payerbridge.errors import Forbidden, Gone, Issue, NotFound
from payerbridge.fhir.resources import ID_PATTERN
from payerbridge.security.model import Principal
from payerbridge.types import BulkJobId

__all__ = [
    "JobFileRead",
    "OwnJob",
    "cancel_own_job",
    "job_id_of",
    "own_job",
    "read_job_file",
    "require_whole_client",
]


@dataclass(frozen=True)
class OwnJob:
    """A job the caller names by its id (as its path gave it)."""

    principal: Principal
    job_id: str
    request_id: str | None = None


@dataclass(frozen=True)
class JobFileRead:
    """One file of a job the caller names, by the file's name in the manifest."""

    principal: Principal
    job_id: str
    name: str
    request_id: str | None = None


def require_whole_client(principal: Principal) -> None:
    """Bulk work is the client's, never a member-scoped token's: a Group and an export
    hold many members."""
    if principal.patient is not None:
        text = "a member-scoped token reads one member's records; bulk operations need the client's"
        raise Forbidden(text, issues=[Issue(text, "patient", "forbidden")])


def job_id_of(text: str) -> BulkJobId:
    """The job id a path names, once it has the shape of one (else no such job, 404)."""
    if not ID_PATTERN.match(text):
        raise NotFound(f"no bulk job '{text[:64]}'")
    return BulkJobId(text)


def own_job(command: OwnJob, uow: BulkUnit) -> BulkJob:
    """The caller's own job, while its output lasts (410 once expired)."""
    require_whole_client(command.principal)
    job = job_of(uow.jobs, job_id_of(command.job_id), command.principal.client_id)
    if job.expired(uow.clock()):
        raise Gone(
            f"the output of job '{command.job_id}' has expired",
            issues=[Issue("the job's files have expired; run it again", "job", "deleted")],
        )
    return job


def read_job_file(command: JobFileRead, uow: BulkUnit) -> tuple[BulkJob, OutputFile]:
    """One file of the caller's own completed job, its read audited (``bulk-file.read``)
    before a line of it goes."""
    job = own_job(OwnJob(command.principal, command.job_id, command.request_id), uow)
    file = job.file(command.name) if job.status is JobStatus.COMPLETED else None
    if file is None:
        raise NotFound(
            f"job '{command.job_id}' has no file '{command.name[:80]}'",
            issues=[Issue("take the file URLs from the job's manifest", "name", "not-found")],
        )
    with uow:
        uow.record(
            AuditEvent(
                at=uow.now,
                actor=command.principal.client_id,
                action="bulk-file.read",
                entity_type="BulkJob",
                entity_id=job.id,
                outcome="success",
                request_id=command.request_id,
                detail={"file": file.name, "lines": file.count},
            )
        )
    return job, file


def cancel_own_job(command: OwnJob, uow: BulkUnit) -> None:
    """Cancel the caller's own job (or, once done, drop its output); its status is 404
    after."""
    require_whole_client(command.principal)
    job_id = job_id_of(command.job_id)
    cancel_job(CancelJob(job_id, command.principal.client_id, command.request_id), uow)
