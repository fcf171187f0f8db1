"""The old payer's obligation rows for its bulk answers (ADR 0037, amendment): a
``$bulk-member-match`` or payer-to-payer export job is a request to answer within one
business day, on the same clock (``answer-within-one-business-day``) as a single
``$member-match``. The row (subject ``bulk-job``, the requesting client as its partner)
starts in the kick-off's unit of work, at the job's arrival, and is met in the unit of
work that completes the job (its manifest ready). A job its client cancels is no longer
owed (closed); one that fails notes why and stays owed, as it was not answered.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from payerbridge.bulk.unit import BulkUnit
from payerbridge.compliance.clocks import CLOSED_WITHDRAWN, Subject, SubjectType, new_clock
from payerbridge.compliance.obligations import ANSWER_WITHIN
from payerbridge.types import BulkJobId

if TYPE_CHECKING:
    from payerbridge.bulk.model import BulkJob

__all__ = ["close_job_clock", "note_job_clock", "settle_job_clock", "start_job_clock"]

JOB_FAILED = "bulk-job-failed"


def _subject(job_id: BulkJobId) -> Subject:
    return Subject(SubjectType.BULK_JOB, job_id)


def start_job_clock(uow: BulkUnit, job: BulkJob) -> None:
    """The job's answer row, as its kick-off is recorded in ``uow``'s transaction."""
    if uow.clocks is None:
        return
    clock = new_clock(
        uow.clocks.obligations,
        ANSWER_WITHIN,
        _subject(job.id),
        {"request_received": job.created_at},
        clock_id=uow.new_id(),
        at=job.created_at,
        partner_id=job.client_id,
    )
    uow.clocks.ledger.start(uow, clock)


def settle_job_clock(uow: BulkUnit, job_id: BulkJobId, at: datetime) -> None:
    """Answered: the job completed at ``at``."""
    if uow.clocks is not None:
        uow.clocks.ledger.settle(uow, ANSWER_WITHIN, _subject(job_id), done_at=at)


def close_job_clock(uow: BulkUnit, job_id: BulkJobId, at: datetime) -> None:
    """No longer owed: the requester cancelled the job."""
    if uow.clocks is not None:
        uow.clocks.ledger.close(uow, _subject(job_id), CLOSED_WITHDRAWN, at=at)


def note_job_clock(uow: BulkUnit, job_id: BulkJobId, at: datetime) -> None:
    """The job failed: still owed, the row says why it was not answered."""
    if uow.clocks is not None:
        uow.clocks.ledger.note(uow, _subject(job_id), JOB_FAILED, at=at)
