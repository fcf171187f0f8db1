"""Bulk payer-to-payer work as durable jobs (ADR 0018): ``$bulk-member-match`` now, the
exports next. A job's row is its checkpoint; its workflow works in chunks, each chunk's
results committed with the job's cursor, so a run cut off anywhere resumes after the last
committed chunk and writes nothing twice."""

from payerbridge.bulk.access import cancel_own_job, own_job, read_job_file
from payerbridge.bulk.export import accept_group_export, accept_patient_export
from payerbridge.bulk.groups import read_group, search_groups
from payerbridge.bulk.jobs import job_file_lines, run_job
from payerbridge.bulk.kick_off import kick_off_export, kick_off_member_match
from payerbridge.bulk.member_match import accept_member_match, cancel_job
from payerbridge.bulk.model import BulkJob, JobKind, JobStatus
from payerbridge.bulk.unit import BulkRules, BulkUnit

__all__ = [
    "BulkJob",
    "BulkRules",
    "BulkUnit",
    "JobKind",
    "JobStatus",
    "accept_group_export",
    "accept_member_match",
    "accept_patient_export",
    "cancel_job",
    "cancel_own_job",
    "job_file_lines",
    "kick_off_export",
    "kick_off_member_match",
    "own_job",
    "read_group",
    "read_job_file",
    "run_job",
    "search_groups",
]
