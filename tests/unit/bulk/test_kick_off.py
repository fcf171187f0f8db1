"""The bulk kick-offs (bulk/kick_off.py): the checks in their order, the PDex version
asked for, a Group export of the caller's own MatchedMembers, and the job recorded with
its audit event (its workflow is the edge's to enqueue)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from payerbridge.bulk.kick_off import (
    ExportKickOff,
    MemberMatchKickOff,
    kick_off_export,
    kick_off_member_match,
    pdex_version_of,
)
from payerbridge.bulk.model import JobKind, JobStatus
from payerbridge.errors import (
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    UnprocessableRequest,
)
from payerbridge.security.model import BULK_MEMBER_MATCH_SCOPES
from payerbridge.types import MemberId
from tests.builders import a_member_bundle
from tests.unit.bulk.memory import WHOLE, a_bulk

MATCHER = dataclasses.replace(WHOLE, scopes=WHOLE.scopes | set(BULK_MEMBER_MATCH_SCOPES))
BODY = {
    "resourceType": "Parameters",
    "parameter": [a_member_bundle("sub-1", "Ana", "Garcia", "1980-02-03", "female", "M100")],
}


def a_match(**changes: Any) -> MemberMatchKickOff:
    asked = MemberMatchKickOff(
        principal=MATCHER,
        respond_async=True,
        pdex_versions=frozenset(),
        body=BODY,
        raw=orjson.dumps(BODY),
        request_url="http://old/fhir/Group/$bulk-member-match",
        request_id="req-1",
    )
    return dataclasses.replace(asked, **changes)


def an_export(group_id: str | None = "matched", **changes: Any) -> ExportKickOff:
    asked = ExportKickOff(
        principal=WHOLE,
        group_id=group_id,
        exact_types=True,
        respond_async=True,
        lenient=False,
        query=[],
        body=None,
        request_url=f"http://old/fhir/Group/{group_id}/$export",
        request_id="req-1",
    )
    return dataclasses.replace(asked, **changes)


def test_a_member_match_is_recorded_and_audited() -> None:
    bulk = a_bulk()
    job = kick_off_member_match(a_match(pdex_versions={"2.1.0"}), bulk.uow).job
    assert (job.kind, job.status, job.total, job.pdex_version) == (
        JobKind.MEMBER_MATCH,
        JobStatus.ACCEPTED,
        1,
        "2.1",
    )
    assert bulk.jobs.bodies[job.id] == orjson.dumps(BODY)
    assert [(e.action, e.outcome) for e in bulk.audit.events] == [("bulk-member-match", "accepted")]


def test_a_member_match_checks_in_order_and_keeps_nothing_refused() -> None:
    bulk = a_bulk()
    member = dataclasses.replace(MATCHER, patient=MemberId("m1"))
    unreadable = InvalidInput("the body is not JSON")
    with pytest.raises(Forbidden, match="member-scoped"):
        kick_off_member_match(a_match(principal=member, respond_async=False), bulk.uow)
    with pytest.raises(Forbidden, match="lacks the scope"):
        kick_off_member_match(a_match(principal=WHOLE, respond_async=False), bulk.uow)
    with pytest.raises(InvalidInput, match="respond-async"):
        kick_off_member_match(a_match(respond_async=False, body_error=unreadable), bulk.uow)
    with pytest.raises(InvalidInput, match="not one this server answers in"):
        kick_off_member_match(a_match(pdex_versions={"3.0"}, body_error=unreadable), bulk.uow)
    with pytest.raises(InvalidInput, match="not JSON"):
        kick_off_member_match(a_match(body_error=unreadable), bulk.uow)
    with pytest.raises(UnprocessableRequest):
        kick_off_member_match(a_match(body={"resourceType": "Parameters"}), bulk.uow)
    assert bulk.jobs.jobs == {}
    assert bulk.audit.events == []


@pytest.mark.parametrize(
    ("asked", "version"), [((), "2.2"), (("2.1",), "2.1"), (("2.2.0-ballot", "2.2"), "2.2")]
)
def test_the_pdex_version_asked_for(asked: tuple[str, ...], version: str) -> None:
    assert pdex_version_of(asked) == version


def test_two_pdex_versions_conflict() -> None:
    with pytest.raises(InvalidInput) as refused:
        pdex_version_of(["2.1", "2.2"])
    assert refused.value.issues[0].code == "conflict"


def test_a_group_export_takes_the_groups_members_once_each() -> None:
    bulk = a_bulk()
    kicked_off = kick_off_export(an_export(), bulk.uow)
    assert (kicked_off.job.kind, kicked_off.job.total) == (JobKind.GROUP_EXPORT, 2)
    assert orjson.loads(bulk.jobs.bodies[kicked_off.job.id])["members"] == ["m1", "m2"]
    assert [e.outcome for e in bulk.audit.events] == ["accepted"]


def test_the_patient_parameter_narrows_a_group_export_to_its_members() -> None:
    bulk = a_bulk()
    job = kick_off_export(an_export(query=[("patient", "Patient/m2")]), bulk.uow).job
    assert orjson.loads(bulk.jobs.bodies[job.id])["members"] == ["m2"]
    with pytest.raises(InvalidInput, match="does not hold"):
        kick_off_export(an_export(query=[("patient", "Patient/m9")]), bulk.uow)


@pytest.mark.parametrize("group_id", ["theirs", "missing", "bad id!"])
def test_another_clients_or_missing_group_does_not_exist(group_id: str) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        kick_off_export(an_export(group_id), a_bulk().uow)


def test_only_an_unexpired_matched_members_group_is_exported() -> None:
    bulk = a_bulk()
    with pytest.raises(UnprocessableRequest, match="only a MatchedMembers Group"):
        kick_off_export(an_export("nonmatched"), bulk.uow)
    bulk.clock.advance(2 * 86400)
    with pytest.raises(Gone):
        kick_off_export(an_export(), bulk.uow)


def test_a_token_granting_no_type_is_refused_before_anything_else() -> None:
    token = dataclasses.replace(WHOLE, scopes=frozenset({"system/Group.s"}))
    with pytest.raises(Forbidden, match="grants no resource type"):
        kick_off_export(an_export("bad id!", principal=token, respond_async=False), a_bulk().uow)


def test_an_export_needs_respond_async_then_a_readable_body() -> None:
    with pytest.raises(InvalidInput, match="an export runs asynchronously"):
        kick_off_export(an_export(respond_async=False), a_bulk().uow)
    with pytest.raises(InvalidInput, match="not JSON"):
        kick_off_export(an_export(body_error=InvalidInput("not JSON")), a_bulk().uow)


def test_types_the_token_does_not_grant_are_told_as_notices() -> None:
    token = dataclasses.replace(WHOLE, scopes=frozenset({"system/Patient.rs"}))
    kicked_off = kick_off_export(
        an_export(principal=token, query=[("_type", "Patient,Coverage")]), a_bulk().uow
    )
    assert [notice.parameter for notice in kicked_off.notices] == ["_type"]


def test_a_patient_export_takes_the_members_named() -> None:
    bulk = a_bulk()
    job = kick_off_export(an_export(None, query=[("patient", "Patient/m7")]), bulk.uow).job
    assert (job.kind, job.total) == (JobKind.PATIENT_EXPORT, 1)
    with pytest.raises(InvalidInput):
        kick_off_export(
            an_export(None, system_level=True, query=[("patient", "Patient/m7")]), bulk.uow
        )
