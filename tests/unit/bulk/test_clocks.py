"""The old payer's bulk answers on the one-business-day clock (bulk/clocks.py, issue 68):
a ``$bulk-member-match`` or export kick-off starts the row in its own unit of work, due
by the close of the next business day, with the requesting client; a job its client
cancels is no longer owed (closed), never pending or missed."""

from __future__ import annotations

import dataclasses

from payerbridge.bulk.kick_off import kick_off_export, kick_off_member_match
from payerbridge.bulk.member_match import CancelJob, cancel_job
from payerbridge.compliance.clocks import CLOSED_WITHDRAWN, Clocks, SubjectType, standing_now
from payerbridge.compliance.model import Standing
from payerbridge.compliance.obligations import ANSWER_WITHIN
from tests.unit.bulk.memory import NEW_PLAN, Bulk, a_bulk
from tests.unit.bulk.test_kick_off import a_match, an_export
from tests.unit.exchange.test_pulls import OBLIGATIONS, InMemoryClockLedger


def _clocked() -> tuple[Bulk, InMemoryClockLedger]:
    bulk, ledger = a_bulk(), InMemoryClockLedger()
    bulk.uow = dataclasses.replace(bulk.uow, clocks=Clocks(OBLIGATIONS, ledger))
    return bulk, ledger


def test_a_bulk_kick_off_starts_our_one_business_day_answer() -> None:
    bulk, ledger = _clocked()
    job = kick_off_member_match(a_match(), bulk.uow).job
    export = kick_off_export(an_export(), bulk.uow).job
    for kicked in (job, export):
        (row,) = ledger.of(kicked.id).values()
        assert (row.obligation, row.subject.type) == (ANSWER_WITHIN, SubjectType.BULK_JOB)
        assert row.partner_id == NEW_PLAN and row.started_at == kicked.created_at
        assert row.due_at == OBLIGATIONS.due(ANSWER_WITHIN, {"request_received": row.started_at})


def test_a_job_its_client_cancels_is_closed_not_left_to_be_missed() -> None:
    bulk, ledger = _clocked()
    job = kick_off_member_match(a_match(), bulk.uow).job
    cancel_job(CancelJob(job.id, NEW_PLAN, request_id=None), bulk.uow)
    (row,) = ledger.of(job.id).values()
    assert (row.standing, row.reason) == (Standing.CLOSED, CLOSED_WITHDRAWN)
    assert row.due_at is not None
    later = row.due_at + (row.due_at - row.started_at) * 10
    assert standing_now(OBLIGATIONS, row, later).standing is Standing.CLOSED
