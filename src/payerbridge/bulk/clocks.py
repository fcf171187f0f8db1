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
from typing import TYPE_CHECKING, Protocol

from payerbridge.compliance.clocks import CLOSED_WITHDRAWN, Clocks, Subject, SubjectType, new_clock
from payerbridge.compliance.obligations import ANSWER_WITHIN
from payerbridge.transactions import UnitOfWork
from payerbridge.types import BulkJobId

if TYPE_CHECKING:
    from payerbridge.bulk.model import BulkJob

__all__ = ["close_job_clock", "note_job_clock", "settle_job_clock", "start_job_clock"]

JOB_FAILED = "bulk-job-failed"


class BulkPorts(Protocol):
    """What these rows need of a bulk use case's ports (the match's or the export's)."""

    @property
    def clocks(self) -> Clocks | None: ...


def _subject(job_id: BulkJobId) -> Subject:
    return Subject(SubjectType.BULK_JOB, job_id)


def start_job_clock(unit: UnitOfWork, ports: BulkPorts, job: BulkJob) -> None:
    """The job's answer row, as its kick-off is recorded in ``unit``."""
    if ports.clocks is None:
        return
    clock = new_clock(
        ports.clocks.obligations,
        ANSWER_WITHIN,
        _subject(job.id),
        {"request_received": job.created_at},
        clock_id=unit.new_id(),
        at=job.created_at,
        partner_id=job.client_id,
    )
    ports.clocks.ledger.start(unit, clock)


def settle_job_clock(unit: UnitOfWork, ports: BulkPorts, job_id: BulkJobId, at: datetime) -> None:
    """Answered: the job completed at ``at``."""
    if ports.clocks is not None:
        ports.clocks.ledger.settle(unit, ANSWER_WITHIN, _subject(job_id), done_at=at)


def close_job_clock(unit: UnitOfWork, ports: BulkPorts, job_id: BulkJobId, at: datetime) -> None:
    """No longer owed: the requester cancelled the job."""
    if ports.clocks is not None:
        ports.clocks.ledger.close(unit, _subject(job_id), CLOSED_WITHDRAWN, at=at)


def note_job_clock(unit: UnitOfWork, ports: BulkPorts, job_id: BulkJobId, at: datetime) -> None:
    """The job failed: still owed, the row says why it was not answered."""
    if ports.clocks is not None:
        ports.clocks.ledger.note(unit, _subject(job_id), JOB_FAILED, at=at)
