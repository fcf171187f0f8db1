"""What any bulk job does, whatever its kind: run it, and read its files."""

from __future__ import annotations

from collections.abc import Iterator

from payerbridge.bulk.export import export_file_lines, run_export
from payerbridge.bulk.member_match import file_lines, run_member_match
from payerbridge.bulk.model import BulkJob, JobStatus, OutputFile
from payerbridge.bulk.unit import BulkUnit
from payerbridge.types import BulkJobId

__all__ = ["job_file_lines", "run_job"]


def run_job(job_id: BulkJobId, uow: BulkUnit) -> JobStatus:
    """Take the job to its end from where its row says it is; the status it ended in."""
    job = uow.jobs.get(job_id)
    if job is None:
        return JobStatus.CANCELLED
    if job.kind.is_member_match:
        return run_member_match(job_id, uow)
    return run_export(job_id, uow)


def job_file_lines(job: BulkJob, file: OutputFile, uow: BulkUnit) -> Iterator[bytes]:
    """The NDJSON lines of one of a completed job's files."""
    if job.kind.is_member_match:
        return file_lines(job, file.name, uow)
    return export_file_lines(job, file, uow)
