"""The caller's own jobs (bulk/access.py): another client's, a cancelled or a malformed
one does not exist, an expired one is gone, a file read is audited on its unit."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from payerbridge.bulk.access import (
    JobFileRead,
    OwnJob,
    cancel_own_job,
    own_job,
    read_job_file,
)
from payerbridge.bulk.model import BulkJob, JobKind, JobStatus, OutputFile
from payerbridge.errors import Forbidden, Gone, NotFound
from payerbridge.types import BulkJobId, ClientId, MemberId
from tests.unit.bulk.memory import NEW_NPI, NEW_PLAN, WHOLE, Bulk, a_bulk


def with_job(status: JobStatus = JobStatus.COMPLETED, client: ClientId = NEW_PLAN) -> Bulk:
    bulk = a_bulk()
    now = bulk.clock()
    bulk.jobs.jobs[BulkJobId("job-1")] = BulkJob(
        id=BulkJobId("job-1"),
        client_id=client,
        requester_npi=NEW_NPI,
        kind=JobKind.MEMBER_MATCH,
        status=status,
        pdex_version="2.2",
        request_url="http://old/fhir/Group/$bulk-member-match",
        total=2,
        done=2,
        lines=0,
        created_at=now,
        updated_at=now,
        transaction_time=now,
        expires_at=now + timedelta(hours=1),
        output=(OutputFile("Group", "Group.ndjson", 3),),
    )
    return bulk


def test_the_callers_own_job_is_found() -> None:
    assert own_job(OwnJob(WHOLE, "job-1"), with_job().uow).id == "job-1"


@pytest.mark.parametrize(
    ("bulk", "job_id"),
    [
        (with_job(client=ClientId("otherplan")), "job-1"),
        (with_job(JobStatus.CANCELLED), "job-1"),
        (with_job(), "missing"),
        (with_job(), "not/an id"),
    ],
)
def test_another_clients_cancelled_missing_or_malformed_job_does_not_exist(
    bulk: Bulk, job_id: str
) -> None:
    with pytest.raises(NotFound, match="no bulk job"):
        own_job(OwnJob(WHOLE, job_id), bulk.uow)


def test_an_expired_job_is_gone() -> None:
    bulk = with_job()
    bulk.clock.advance(3600)
    with pytest.raises(Gone, match="the output of job 'job-1' has expired"):
        own_job(OwnJob(WHOLE, "job-1"), bulk.uow)


def test_a_member_scoped_token_reaches_no_job() -> None:
    member = dataclasses.replace(WHOLE, patient=MemberId("m1"))
    with pytest.raises(Forbidden):
        own_job(OwnJob(member, "job-1"), with_job().uow)
    with pytest.raises(Forbidden):
        cancel_own_job(OwnJob(member, "job-1"), with_job().uow)


def test_a_file_read_is_audited_on_its_unit() -> None:
    bulk = with_job()
    job, file = read_job_file(JobFileRead(WHOLE, "job-1", "Group.ndjson", "req-1"), bulk.uow)
    assert (job.id, file.name) == ("job-1", "Group.ndjson")
    [event] = bulk.audit.events
    assert (event.action, event.actor, event.entity_id, event.request_id) == (
        "bulk-file.read",
        NEW_PLAN,
        "job-1",
        "req-1",
    )
    assert event.at == bulk.clock()
    assert event.detail == {"file": "Group.ndjson", "lines": 3}


@pytest.mark.parametrize(
    ("status", "name"), [(JobStatus.COMPLETED, "Other.ndjson"), (JobStatus.RUNNING, "Group.ndjson")]
)
def test_a_file_the_job_does_not_have_yet_is_not_found(status: JobStatus, name: str) -> None:
    bulk = with_job(status)
    with pytest.raises(NotFound, match="has no file"):
        read_job_file(JobFileRead(WHOLE, "job-1", name), bulk.uow)
    assert bulk.audit.events == []


def test_cancelling_the_callers_job_is_audited() -> None:
    bulk = with_job(JobStatus.RUNNING)
    cancel_own_job(OwnJob(WHOLE, "job-1", "req-2"), bulk.uow)
    assert bulk.jobs.jobs[BulkJobId("job-1")].status is JobStatus.CANCELLED
    assert [(e.action, e.outcome) for e in bulk.audit.events] == [
        ("bulk-member-match", "cancelled")
    ]
